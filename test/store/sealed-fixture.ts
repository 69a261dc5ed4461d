/**
 * A data folder holding every kind of sealed record, made through the records' owners: devices
 * (DeviceRegistry.add), cached keys (KeyCache.applyPut) and push outbox entries (PushRelay.prepare),
 * with each record's plaintext kept to check against after a rotation, a backup or a restore.
 */
import { randomBytes } from 'node:crypto';
import { KeyCache } from '../../src/agent/key-cache.ts';
import { dataDir } from '../../src/agent/data-dir.ts';
import { DownCounters } from '../../src/devices/down-counters.ts';
import { PushRelay } from '../../src/devices/push-relay.ts';
import { DeviceRegistry } from '../../src/devices/registry.ts';
import { nameValue } from '../../src/kmip/attributes.ts';
import { notifyPayload, readPush } from '../../src/kmip/push.ts';
import { Operation, State, Tag } from '../../src/kmip/tables.generated.ts';
import { silentLogger } from '../../src/log.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { MasterKey } from '../../src/store/master-key.ts';
import { sealedRecords } from '../../src/store/sealed-records.ts';
import { byteString, enumeration, integer, structure } from '../../src/ttlv/build.ts';

const unused = { get: () => Promise.reject(new Error('no upstream')), getAttributes: () => Promise.reject(new Error('no upstream')), obtainLease: () => Promise.reject(new Error('no upstream')) };

export function symmetricKey(material: Uint8Array) {
  return structure(Tag.SymmetricKey, [structure(Tag.KeyBlock, [enumeration(Tag.KeyFormatType, 1), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, material)]), enumeration(Tag.CryptographicAlgorithm, 3), integer(Tag.CryptographicLength, 256)])]);
}

/** Plaintext (hex) of every sealed record by record key, and the counts per kind. */
export interface SealedFixture {
  plaintexts: Map<string, string>;
  devices: Map<string, string>;
  keys: Map<string, string>;
  outbox: number;
}

/** Fills the store of `data` (created) with `devices` devices, `keys` cached keys and `pushes` × 20 outbox entries. */
export async function makeSealedFixture(data: string, counts: { devices: number; keys: number; pushes: number }): Promise<SealedFixture> {
  const paths = dataDir(data, true);
  const masterKey = MasterKey.load(paths.masterKey);
  const store = await LevelStore.open(paths.store);
  const fixture: SealedFixture = { plaintexts: new Map(), devices: new Map(), keys: new Map(), outbox: 0 };
  try {
    const registry = new DeviceRegistry(store, masterKey);
    // Concurrent adds are group-committed by the store: one fsync for many.
    const adds: Promise<void>[] = [];
    for (let i = 0; i < counts.devices; i++) adds.push(registry.add(`bulk-${i}`).then((d) => void fixture.devices.set(d.id, Buffer.from(d.key).toString('hex'))));
    for (let i = 0; i < 20; i++) adds.push(registry.add(`pushed-${i}`, { keys: [{ uniqueIdentifier: 'pushed-key' }] }).then((d) => void fixture.devices.set(d.id, Buffer.from(d.key).toString('hex'))));
    await Promise.all(adds);
    const cache = new KeyCache(store, masterKey, unused);
    const puts: Promise<unknown>[] = [];
    for (let i = 0; i < counts.keys; i++) {
      const material = new Uint8Array(randomBytes(32));
      fixture.keys.set(`key-${i}`, Buffer.from(material).toString('hex'));
      puts.push(cache.applyPut(`key-${i}`, symmetricKey(material), [{ name: 'State', value: enumeration(Tag.AttributeValue, State.Active) }]));
    }
    await Promise.all(puts);
    const relay = new PushRelay(store, masterKey, registry, new DownCounters(store), silentLogger);
    for (let i = 0; i < counts.pushes; i++) {
      const push = readPush(Operation.Notify, structure(Tag.RequestPayload, notifyPayload('pushed-key', [{ name: 'Name', value: nameValue(`pushed-name-${i}`) }])));
      const { writes } = await relay.prepare(push);
      await store.commit(writes(undefined, true));
    }
    for await (const { key, value, kind } of sealedRecords(store)) {
      if (key.startsWith('outbox/')) fixture.outbox++;
      fixture.plaintexts.set(key, Buffer.from(masterKey.open(kind.sealed(value), key)).toString('hex'));
    }
  } finally {
    await store.close();
  }
  return fixture;
}

/**
 * Opens the store of `data` and checks every sealed record against the fixture: each opens under
 * one of `keys` with its original plaintext, none is missing or extra. Returns how many opened under each key.
 */
export async function checkSealed(data: string, fixture: SealedFixture, keys: MasterKey[]): Promise<number[]> {
  const store = await LevelStore.open(dataDir(data).store);
  const opened = keys.map(() => 0);
  const seen = new Set<string>();
  try {
    for await (const { key, value, kind } of sealedRecords(store)) {
      const expected = fixture.plaintexts.get(key);
      if (expected === undefined) throw new Error(`an extra sealed record ${key}`);
      const index = keys.findIndex((k) => k.tryOpen(kind.sealed(value), key) !== undefined);
      if (index < 0) throw new Error(`record ${key} opens under none of the ${keys.length} keys`);
      if (Buffer.from(keys[index]!.open(kind.sealed(value), key)).toString('hex') !== expected) throw new Error(`record ${key} changed`);
      opened[index]!++;
      seen.add(key);
    }
  } finally {
    await store.close();
  }
  if (seen.size !== fixture.plaintexts.size) throw new Error(`${fixture.plaintexts.size - seen.size} sealed records lost`);
  return opened;
}
