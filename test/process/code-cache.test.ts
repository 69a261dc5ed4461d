/**
 * The command runs the bundle with the V8 code cache the build made (scripts/launcher.mjs; issue
 * #15, cold start): this Node accepts it, also with the systemd unit's environment; a cache of
 * another bundle, a damaged one or none is rejected or skipped, and the command then does exactly
 * what it does with it — the cache makes a start faster, never different.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { serviceEnvironment, unitEnvironment } from '../../src/bench/footprint-bench.ts';
import { ROOT } from '../helpers/cli.ts';

const PRELOAD = join(ROOT, 'test/process/report-at-exit.cjs');
const COMMANDS = [['--version'], ['help'], ['ttlv', 'decode', '--hex', '42006A02000000040000000100000000'], ['run', '--no-such-flag']];

interface Outcome { status: number | null; stdout: string; stderr: string; codeCache: string }

function run(dist: string, args: string[], env: NodeJS.ProcessEnv = process.env, nodeFlags: string[] = []): Outcome {
  const child = spawnSync(process.execPath, [...nodeFlags, '-r', PRELOAD, join(dist, 'kmip-edge.mjs'), ...args], { encoding: 'utf8', timeout: 60_000, env });
  const report = /^process-report: (.*)$/m.exec(child.stderr);
  assert.ok(report, `the preload reported (exit ${child.status}): ${child.stderr}`);
  return { status: child.status, stdout: child.stdout, stderr: child.stderr.replace(report[0] + '\n', ''), codeCache: (JSON.parse(report[1]!) as { codeCache: string }).codeCache };
}

it('the build\'s code cache is accepted, also under the unit\'s environment', () => {
  const unit = serviceEnvironment(unitEnvironment(readFileSync(join(ROOT, 'deploy/kmip-edge.service'), 'utf8')));
  for (const env of [process.env, unit]) {
    const outcome = run(join(ROOT, 'dist'), ['--version'], env);
    assert.equal(outcome.status, 0, outcome.stderr);
    assert.equal(outcome.codeCache, 'accepted', `NODE_OPTIONS=${env.NODE_OPTIONS ?? ''}`);
  }
});

it('a cache of another bundle, a damaged cache or none: rejected or missing; with source maps on, not used; every command does the same', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'kmip-edge-code-cache-'));
  try {
    // A copy of the package: the command, the bundle, its cache; package.json for --version.
    const copy = (name: string) => {
      const dist = join(scratch, name, 'dist');
      mkdirSync(dist, { recursive: true });
      copyFileSync(join(ROOT, 'package.json'), join(scratch, name, 'package.json'));
      for (const file of ['kmip-edge.mjs', 'kmip-edge.cjs', 'kmip-edge.cjs.cache']) copyFileSync(join(ROOT, 'dist', file), join(dist, file));
      return dist;
    };
    const cases: [string, string, (dist: string) => void, string[]?][] = [
      ['as built', 'accepted', () => {}],
      ['another bundle', 'rejected', (dist) => appendFileSync(join(dist, 'kmip-edge.cjs'), '\n// rebuilt\n')],
      ['damaged', 'rejected', (dist) => writeFileSync(join(dist, 'kmip-edge.cjs.cache'), Buffer.alloc(4096, 0x5a))],
      ['none', 'missing', (dist) => rmSync(join(dist, 'kmip-edge.cjs.cache'))],
      // Loaded by Node itself, whose stack traces then name src/*.ts (a vm.Script's are not mapped).
      ['source maps', 'unused (source maps)', () => {}, ['--enable-source-maps']],
    ];
    const reference = new Map<string, Outcome>();
    for (const [name, expected, prepare, nodeFlags] of cases) {
      const dist = copy(name.replace(/ /g, '-'));
      prepare(dist);
      for (const args of COMMANDS) {
        const outcome = run(dist, args, process.env, nodeFlags);
        assert.equal(outcome.codeCache, expected, `${name}: kmip-edge ${args.join(' ')}`);
        const { codeCache: _, ...seen } = outcome;
        const key = args.join(' ');
        if (!reference.has(key)) reference.set(key, outcome);
        const { codeCache: __, ...wanted } = reference.get(key)!;
        assert.deepEqual(seen, wanted, `${name}: kmip-edge ${key} as with the build's cache`);
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
