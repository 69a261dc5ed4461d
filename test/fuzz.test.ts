/** A short, bounded run of the fuzzer over every parser (npm run fuzz runs it longer). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';
import { ROOT } from './helpers/cli.ts';

const PARSERS = ['TTLV decode', 'TTLV framer', 'KMIP XML', 'KMIP JSON', 'hex', 'device frame', 'SLIP', 'Put/Notify', 'nonce-MAC request', 'config file'];

function fuzz(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'scripts/fuzz.ts', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
}

it('fuzzing every parser with 1,000 inputs each finds nothing, and --json counts exactly those inputs per parser', () => {
  const run = fuzz(['--inputs', '1000', '--json']);
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const lines = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { parser: string; inputs: number; seconds: number; inputsPerSec: number; seed: number; finding: unknown });
  assert.deepEqual(lines.map((l) => l.parser), PARSERS);
  for (const line of lines) {
    assert.equal(line.inputs, 1000, line.parser);
    assert.equal(line.finding, null, line.parser);
    assert.ok(Number.isInteger(line.seed) && typeof line.seconds === 'number' && line.inputsPerSec > 0, JSON.stringify(line));
  }
});

it('a time-boxed run prints each parser with its execution count', () => {
  const run = fuzz(['--seconds', '0.2']);
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const lines = run.stdout.trim().split('\n');
  assert.deepEqual(lines.map((l) => l.slice(0, l.indexOf(':'))), PARSERS);
  for (const line of lines) assert.match(line, /^[^:]+: [1-9]\d* inputs in \d+\.\d s \(\d+\/s\), no finding$/);
});

it('--only picks parsers; a bad flag is one line and exit 2', () => {
  const one = fuzz(['--inputs', '10', '--only', 'slip']);
  assert.equal(one.status, 0, one.stderr);
  assert.match(one.stdout, /^SLIP: 10 inputs in /);
  for (const args of [['--inputs', '0'], ['--seconds', '1', '--inputs', '5'], ['--only', 'nothing-like-this'], ['--bogus']]) {
    const bad = fuzz(args);
    assert.equal(bad.status, 2, args.join(' '));
    assert.equal(bad.stdout, '');
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  }
});
