/**
 * Every kind of record the agent seals under its master key (issue #15: a rotation must re-seal
 * them all), with where the sealed bytes sit in the record's value. The record's key is the
 * additional data of its seal (master-key.ts). test/store/rotation.test.ts creates each kind
 * through its owner and checks this list finds it, so a new kind left out here fails there.
 */
import type { KeyValueStore } from './kv-store.ts';

export interface SealedKind {
  /** The records' key prefix (the owner's constant). */
  prefix: string;
  /** The sealed bytes in a record's value. */
  sealed(value: Uint8Array): Uint8Array;
  /** The value with `sealed` in place of the old sealed bytes, the rest unchanged. */
  withSealed(value: Uint8Array, sealed: Uint8Array): Uint8Array;
}

const whole: Pick<SealedKind, 'sealed' | 'withSealed'> = { sealed: (value) => value, withSealed: (_value, sealed) => sealed };

export const SEALED_KINDS: readonly SealedKind[] = [
  // src/agent/key-cache.ts MATERIAL: cached key material (the nonce-MAC keys too)
  { prefix: 'cache/key/', ...whole },
  // src/devices/push-relay.ts OUTBOX: pushed KMIP messages awaiting a device's acknowledgement
  { prefix: 'outbox/', ...whole },
  // src/devices/registry.ts PREFIX: a device's JSON record; its key is sealed in `sealedKey` (base64)
  {
    prefix: 'device/registry/',
    sealed: (value) => new Uint8Array(Buffer.from((JSON.parse(Buffer.from(value).toString()) as { sealedKey: string }).sealedKey, 'base64')),
    withSealed: (value, sealed) => {
      const record = JSON.parse(Buffer.from(value).toString()) as Record<string, unknown>;
      return new Uint8Array(Buffer.from(JSON.stringify({ ...record, sealedKey: Buffer.from(sealed).toString('base64') })));
    },
  },
];

/** Every sealed record of `store`: its key, its value, and its kind. */
export async function* sealedRecords(store: KeyValueStore): AsyncIterable<{ key: string; value: Uint8Array; kind: SealedKind }> {
  for (const kind of SEALED_KINDS) {
    for await (const [key, value] of store.entries(kind.prefix)) yield { key, value, kind };
  }
}
