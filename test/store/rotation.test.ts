/**
 * Master-key rotation in process (src/store/rotation.ts) on LevelDB on disk: every sealed record
 * kind is covered (the list in sealed-records.ts against the places src/ seals with the master
 * key), a rotation re-seals them all and switches the key file, a record that opens under neither
 * key stops the rotation before the switch, and MasterKey.load refuses while a rotation is pending.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isKmipEdgeError } from '../../src/errors.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { MasterKey } from '../../src/store/master-key.ts';
import { rotateMasterKey } from '../../src/store/rotation.ts';
import { SEALED_KINDS } from '../../src/store/sealed-records.ts';
import { ROOT } from '../helpers/cli.ts';
import { checkSealed, makeSealedFixture } from './sealed-fixture.ts';

function sourceFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? sourceFiles(join(folder, entry.name)) : entry.name.endsWith('.ts') ? [join(folder, entry.name)] : []));
}

describe('master-key rotation', () => {
  it('the sealed kinds are every place src/ seals with the master key', () => {
    const sealing = sourceFiles(join(ROOT, 'src')).filter((file) => /masterKey\.seal\(/.test(readFileSync(file, 'utf8'))).map((file) => file.slice(ROOT.length)).sort();
    // A new place here needs its kind in src/store/sealed-records.ts (and a record in sealed-fixture.ts).
    assert.deepEqual(sealing, ['src/agent/key-cache.ts', 'src/devices/push-relay.ts', 'src/devices/registry.ts']);
    assert.deepEqual(SEALED_KINDS.map((k) => k.prefix).sort(), ['cache/key/', 'device/registry/', 'outbox/']);
  });

  it('re-seals every record of each kind under a new key and replaces the key file', async () => {
    const data = mkdtempSync(join(tmpdir(), 'kmip-edge-rotation-'));
    const fixture = await makeSealedFixture(data, { devices: 30, keys: 30, pushes: 2 });
    assert.ok(fixture.outbox > 0 && fixture.devices.size > 0 && fixture.keys.size > 0);
    const keyFile = join(data, 'master.key');
    const old = MasterKey.read(keyFile);
    const store = await LevelStore.open(join(data, 'store'));
    const result = await rotateMasterKey(store, keyFile, 7).finally(() => store.close());
    assert.deepEqual([result.records, result.resealed, result.resumed], [fixture.plaintexts.size, fixture.plaintexts.size, false]);
    assert.equal(result.previousFingerprint, old.fingerprint());
    const current = MasterKey.read(keyFile);
    assert.equal(current.fingerprint(), result.fingerprint);
    assert.notEqual(current.fingerprint(), old.fingerprint());
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.ok(!existsSync(`${keyFile}.next`));
    assert.deepEqual(await checkSealed(data, fixture, [current, old]), [fixture.plaintexts.size, 0]);
  });

  it('resumes after a crash between overwriting the old key and the switch (every record already under the next key)', async () => {
    const data = mkdtempSync(join(tmpdir(), 'kmip-edge-rotation-'));
    const fixture = await makeSealedFixture(data, { devices: 5, keys: 5, pushes: 1 });
    const keyFile = join(data, 'master.key');
    let store = await LevelStore.open(join(data, 'store'));
    await rotateMasterKey(store, keyFile).finally(() => store.close());
    // The state such a crash leaves: the next key beside a master.key overwritten with random bytes.
    const next = readFileSync(keyFile);
    writeFileSync(`${keyFile}.next`, next, { mode: 0o600 });
    writeFileSync(keyFile, MasterKey.generate().exportBytes(), { mode: 0o600 });
    store = await LevelStore.open(join(data, 'store'));
    const result = await rotateMasterKey(store, keyFile).finally(() => store.close());
    assert.deepEqual([result.resumed, result.resealed], [true, 0]);
    assert.ok(readFileSync(keyFile).equals(next));
    assert.deepEqual(await checkSealed(data, fixture, [MasterKey.read(keyFile)]), [fixture.plaintexts.size]);
  });

  it('stops before the switch when a record opens under neither key; the agent will not load half a rotation', async () => {
    const data = mkdtempSync(join(tmpdir(), 'kmip-edge-rotation-'));
    await makeSealedFixture(data, { devices: 3, keys: 3, pushes: 0 });
    const keyFile = join(data, 'master.key');
    const before = readFileSync(keyFile);
    const store = await LevelStore.open(join(data, 'store'));
    try {
      const sealed = (await store.get('cache/key/key-1'))!;
      const tampered = new Uint8Array(sealed);
      tampered[20]! ^= 1;
      await store.commit([{ type: 'put', key: 'cache/key/key-1', value: tampered }]);
      await assert.rejects(rotateMasterKey(store, keyFile), (error) => isKmipEdgeError(error, 'ROTATION_RECORD_UNREADABLE') && /cache\/key\/key-1 opens under neither/.test((error as Error).message));
    } finally {
      await store.close();
    }
    assert.ok(readFileSync(keyFile).equals(before), 'the key file is untouched');
    assert.ok(existsSync(`${keyFile}.next`), 'the rotation stays pending');
    assert.throws(() => MasterKey.load(keyFile, undefined), (error) => isKmipEdgeError(error, 'MASTER_KEY_ROTATING'));
  });
});
