// Preloaded (node -r) by lazy-native.test.ts: at exit, prints the native addons (.node files) this
// process had mapped, from /proc/self/maps — what it loaded, whatever loader path brought them in.
'use strict';
const { readFileSync } = require('node:fs');
process.on('exit', () => {
  const mapped = readFileSync('/proc/self/maps', 'utf8').split('\n').map((line) => line.split(/\s+/).pop()).filter((path) => path.endsWith('.node'));
  process.stderr.write(`native-addons: ${JSON.stringify([...new Set(mapped)])}\n`);
});
