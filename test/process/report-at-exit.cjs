// Preloaded (node -r) by the tests of test/process/: at exit, prints what the process had loaded —
// the native addons (.node files) it had mapped (/proc/self/maps, whatever loader brought them in)
// and what V8 did with the bundle's code cache (scripts/launcher.mjs).
'use strict';
const { readFileSync } = require('node:fs');
process.on('exit', () => {
  const mapped = readFileSync('/proc/self/maps', 'utf8').split('\n').map((line) => line.split(/\s+/).pop()).filter((path) => path.endsWith('.node'));
  const report = { nativeAddons: [...new Set(mapped)], codeCache: globalThis[Symbol.for('kmip-edge.codeCache')] ?? null };
  process.stderr.write(`process-report: ${JSON.stringify(report)}\n`);
});
