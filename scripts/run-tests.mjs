// Runs every test/**/*.test.ts with Node's test runner (tsx for TypeScript). Fails when no test
// file is found: a suite that ran nothing must not look green (TOOLCHAIN.md, tsx pitfall).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const files = readdirSync(`${root}test`, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.test.ts'))
  .sort()
  .map((f) => `test/${f}`);
if (files.length === 0) {
  console.error('run-tests: no test/**/*.test.ts found');
  process.exit(1);
}
const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...process.argv.slice(2), ...files], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(run.status ?? 1);
