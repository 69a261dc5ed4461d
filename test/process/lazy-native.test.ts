/**
 * Commands that need no store do not load LevelDB's native addon (src/store/kv-store.ts loads
 * classic-level on the first open): loading it costs every such command its start-up time and
 * memory (issue #15, cold start). bench ledger's static import of classic-level once put it in
 * every command's start (an ESM bundle hoists its external imports to the top); any import of it
 * on a path every command loads would do the same. This runs the bundle and reads what the process
 * had mapped at exit.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { runReported, STORELESS_COMMANDS } from '../helpers/process-report.ts';

it('--version, help and ttlv load no native addon; a command with a store loads classic-level', () => {
  for (const args of STORELESS_COMMANDS) {
    const addons = runReported(args).report.nativeAddons;
    assert.deepEqual(addons, [], `kmip-edge ${args.join(' ')} loaded ${addons.join(', ')}`);
  }
  // The check sees the addon when it is loaded: a command that opens a store.
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-lazy-native-'));
  try {
    mkdirSync(join(dir, 'data'));
    const { status, report: { nativeAddons: addons } } = runReported(['device', 'add', '--data', join(dir, 'data'), '--id', 'sensor-1']);
    assert.equal(status, 0);
    assert.ok(addons.some((path) => /classic-level/.test(path)), `device add loaded classic-level: ${addons.join(', ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
