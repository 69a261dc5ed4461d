/** A short, time-boxed run of the fuzzer over every parser (npm run fuzz runs it longer). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';
import { ROOT } from './helpers/cli.ts';

it('fuzzing TTLV, framer, XML, JSON, hex, device-frame, SLIP, Put/Notify and nonce-MAC request parsers for 1 s each finds nothing', () => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/fuzz.ts', '--seconds', '1'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const lines = run.stdout.trim().split('\n');
  assert.equal(lines.length, 9, run.stdout);
  for (const line of lines) assert.match(line, /: \d+ inputs in .* no finding$/);
});
