/** `kmip-edge ledger --data DIR [--json]` over a store the ledger wrote. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { dataDir } from '../../src/agent/data-dir.ts';
import { Ledger } from '../../src/agent/ledger.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { runCli } from '../helpers/cli.ts';

it('prints per key: allocated from upstream, granted to devices, remaining, per device', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kmip-edge-ledger-cli-'));
  const store = await LevelStore.open(dataDir(root, true).store);
  const ledger = new Ledger({ store, allocate: async () => undefined, minChunk: 50n });
  await ledger.grant('key-1', 'tape-1', 'r1', 7n);
  await ledger.grant('key-1', 'tape-2', 'r1', 3n);
  await ledger.grant('key-1', 'tape-1', 'r2', 5n);
  await store.close();
  const run = runCli(['ledger', '--data', root, '--json']);
  assert.equal(run.status, 0, run.stderr);
  const { keys } = JSON.parse(run.stdout) as { keys: { allocatedFromUpstream: number }[] };
  assert.equal(keys.length, 1);
  assert.deepEqual({ ...keys[0], allocatedFromUpstream: undefined }, { uniqueIdentifier: 'key-1', allocatedFromUpstream: undefined, grantedToDevices: 15, remaining: keys[0]!.allocatedFromUpstream - 15, perDevice: { 'tape-1': 12, 'tape-2': 3 } });
  assert.ok(keys[0]!.allocatedFromUpstream >= 50);
  assert.match(runCli(['ledger', '--data', root]).stdout, /key-1: \d+ allocated from upstream, 15 granted to devices/);
  assert.equal(runCli(['ledger', '--data', join(root, 'nope')]).status, 2);
});
