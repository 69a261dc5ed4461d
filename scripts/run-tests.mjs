// Runs every test/**/*.test.ts with Node's test runner (tsx for TypeScript).
// - Preflight: the suite talks to real peers; ensurePeers (scripts/peers.mjs) installs missing
//   ones or stops the run at once with one line (npm test runs it first, before type-checking).
// - Every test file and every test has a timeout (--test-timeout applies to each file's process
//   and is inherited by its tests): a stuck peer fails one file instead of hanging the run.
// - Fails when no test file is found: a suite that ran nothing must not look green (TOOLCHAIN.md).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ensurePeers } from './peers.mjs';

/** Per test file (and per test, unless a test sets its own): the slowest file takes ~60 s here. */
const FILE_TIMEOUT_MS = 300_000;

const root = fileURLToPath(new URL('..', import.meta.url));
ensurePeers();

const files = readdirSync(`${root}test`, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.test.ts'))
  .sort()
  .map((f) => `test/${f}`);
if (files.length === 0) {
  console.error('run-tests: no test/**/*.test.ts found');
  process.exit(1);
}
const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-timeout=${FILE_TIMEOUT_MS}`, ...process.argv.slice(2), ...files], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(run.status ?? 1);
