/**
 * The command runs the bundle with the V8 code cache the build made (scripts/launcher.mjs; issue
 * #15, cold start): this Node accepts it, also with the systemd unit's environment; a cache of
 * another bundle, a damaged one or none is rejected or skipped, and the command then does exactly
 * what it does with it — the cache makes a start faster, never different.
 */
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { serviceEnvironment, unitEnvironment } from '../../src/bench/footprint-bench.ts';
import { ROOT } from '../helpers/cli.ts';
import { runReported, STORELESS_COMMANDS } from '../helpers/process-report.ts';

it('the build\'s code cache is accepted, also under the unit\'s environment', () => {
  const unit = serviceEnvironment(unitEnvironment(readFileSync(join(ROOT, 'deploy/kmip-edge.service'), 'utf8')));
  for (const env of [process.env, unit]) {
    const outcome = runReported(['--version'], { env });
    assert.equal(outcome.status, 0, outcome.stderr);
    assert.equal(outcome.report.codeCache, 'accepted', `NODE_OPTIONS=${env.NODE_OPTIONS ?? ''}`);
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
    const reference = new Map<string, { status: number | null; stdout: string; stderr: string }>();
    for (const [name, expected, prepare, nodeFlags] of cases) {
      const dist = copy(name.replace(/ /g, '-'));
      prepare(dist);
      for (const args of STORELESS_COMMANDS) {
        const { report, ...seen } = runReported(args, { dist, nodeFlags });
        assert.equal(report.codeCache, expected, `${name}: kmip-edge ${args.join(' ')}`);
        const key = args.join(' ');
        if (!reference.has(key)) reference.set(key, seen);
        assert.deepEqual(seen, reference.get(key), `${name}: kmip-edge ${key} as with the build's cache`);
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
