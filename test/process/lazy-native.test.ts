/**
 * Commands that need no store do not load LevelDB's native addon (src/store/kv-store.ts loads
 * classic-level on the first open): loading it costs every such command its start-up time and
 * memory (issue #15, cold start). bench ledger's static import of classic-level once put it in
 * every command's start (an ESM bundle hoists its external imports to the top); any import of it
 * on a path every command loads would do the same. This runs the bundle and reads what the process
 * had mapped at exit.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { ROOT } from '../helpers/cli.ts';

const PRELOAD = join(ROOT, 'test/process/report-at-exit.cjs');

function nativeAddons(args: string[]): { status: number | null; addons: string[] } {
  const run = spawnSync(process.execPath, ['-r', PRELOAD, join(ROOT, 'dist/kmip-edge.mjs'), ...args], { encoding: 'utf8', timeout: 60_000 });
  const line = /^process-report: (.*)$/m.exec(run.stderr);
  assert.ok(line, `the preload reported (exit ${run.status}): ${run.stderr}`);
  return { status: run.status, addons: (JSON.parse(line[1]!) as { nativeAddons: string[] }).nativeAddons };
}

it('--version, help and ttlv load no native addon; a command with a store loads classic-level', () => {
  for (const args of [['--version'], ['help'], ['ttlv', 'decode', '--hex', '42006A02000000040000000100000000'], ['run', '--no-such-flag']]) {
    const { addons } = nativeAddons(args);
    assert.deepEqual(addons, [], `kmip-edge ${args.join(' ')} loaded ${addons.join(', ')}`);
  }
  // The check sees the addon when it is loaded: a command that opens a store.
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-lazy-native-'));
  try {
    mkdirSync(join(dir, 'data'));
    const { status, addons } = nativeAddons(['device', 'add', '--data', join(dir, 'data'), '--id', 'sensor-1']);
    assert.equal(status, 0);
    assert.ok(addons.some((path) => /classic-level/.test(path)), `device add loaded classic-level: ${addons.join(', ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
