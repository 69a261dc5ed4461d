/**
 * Nonce-MAC cache fills at the agent (ARCHITECTURE.md §6 (a), Usage Guide §4.21.2) against the
 * development server over mutual TLS, with a man in the middle rewriting messages: the honest
 * path fills the cache; a tampered MAC, a tampered key byte, a replayed earlier response (stale
 * nonce) and a nonce set by another client are rejected — the last one retried, and accepted
 * only once the nonce is the agent's own.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentCore, type NonceMacConfig } from '../../src/agent/agent-core.ts';
import { keyBlockOf, keyMaterialOf } from '../../src/kmip/payloads.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Tag } from '../../src/kmip/tables.generated.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { enumeration, integer } from '../../src/ttlv/build.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import type { TtlvItem } from '../../src/ttlv/item.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { startDevServer } from '../helpers/dev-server.ts';
import { flipByte, getPayloadOf, replayGetPayload, TamperingTransport } from '../helpers/tampering-transport.ts';
import { findItem } from '../helpers/tree.ts';

let dev: Awaited<ReturnType<typeof startDevServer>>;
let admin: KmipClient;
let macUid: string;

before(async () => {
  dev = await startDevServer({ leaseSeconds: 600 });
  admin = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
  macUid = await admin.create(ObjectType.SymmetricKey, [
    { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, CryptographicAlgorithm.HMAC_SHA256) },
    { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
    { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.MACGenerate | CryptographicUsageMask.MACVerify) },
  ]);
});
after(async () => {
  await admin.close();
  await dev.stop();
});

async function activeKey(name: string): Promise<{ uid: string; material: string }> {
  const uid = await admin.create(ObjectType.SymmetricKey, aesKey(name));
  await admin.activate(uid);
  return { uid, material: toHex(keyMaterialOf(keyBlockOf((await admin.get(uid)).object))) };
}

/** An agent whose upstream traffic passes through a tampering transport; nonce-MAC for every key unless `nonceMac` says otherwise. */
async function openAgent(nonceMac: NonceMacConfig = { defaultMacKey: macUid }) {
  const data = mkdtempSync(join(tmpdir(), 'kmip-edge-nonce-'));
  const mitm = new TamperingTransport(new TlsPool(dev.endpoint));
  const client = new KmipClient({ transport: mitm, version: { major: 1, minor: 2 } });
  const agent = await AgentCore.open({ data, client, nonceMac });
  await agent.cache.get(macUid); // the MAC key, fetched plainly before any tampering
  return { agent, mitm, close: async () => { await agent.close(); await client.close(); } };
}

const code = (expected: string) => (e: unknown) => (e as { code?: string }).code === expected;

describe('nonce-MAC at the agent', () => {
  it('the honest path: the key is set a fresh x-Nonce, fetched MAC-wrapped, verified and cached', async () => {
    const key = await activeKey('nonce-honest');
    const { agent, close } = await openAgent();
    try {
      const got = await agent.getKey('d', key.uid, 'protect');
      assert.equal(toHex(got.material), key.material);
      const first = (await admin.getAttributes(key.uid, ['x-Nonce'])).attributes[0]?.value?.value as Uint8Array;
      assert.equal(first.length, 16, 'the server holds the nonce the agent set');
      // A second fill (another agent) modifies the nonce instead of adding a second one.
      const second = await openAgent();
      try {
        await second.agent.getKey('d', key.uid, 'protect');
      } finally {
        await second.close();
      }
      const nonces = (await admin.getAttributes(key.uid, ['x-Nonce'])).attributes;
      assert.equal(nonces.length, 1);
      assert.notEqual(toHex(nonces[0]!.value!.value as Uint8Array), toHex(first));
    } finally {
      await close();
    }
  });

  it('configured per key: only the keys named use nonce-MAC; the MAC key itself is fetched plainly', async () => {
    const chosen = await activeKey('nonce-per-key');
    const plain = await activeKey('nonce-not-chosen');
    const { agent, close } = await openAgent({ perKey: { [chosen.uid]: macUid } });
    try {
      assert.equal(toHex((await agent.getKey('d', chosen.uid, 'protect')).material), chosen.material);
      assert.equal(toHex((await agent.getKey('d', plain.uid, 'protect')).material), plain.material);
      assert.equal((await admin.getAttributes(chosen.uid, ['x-Nonce'])).attributes.length, 1);
      assert.equal((await admin.getAttributes(plain.uid, ['x-Nonce'])).attributes.length, 0);
      assert.equal((await admin.getAttributes(macUid, ['x-Nonce'])).attributes.length, 0);
    } finally {
      await close();
    }
  });

  for (const [what, tag] of [['a tampered MAC', Tag.MACSignature], ['a tampered key byte', Tag.KeyMaterial]] as const) {
    it(`${what} is rejected (KMIP_MAC_INVALID), not retried, and nothing is cached`, async () => {
      const key = await activeKey(`nonce-${tag}`);
      const { agent, mitm, close } = await openAgent();
      try {
        mitm.onResponse = (message) => (getPayloadOf(message) ? flipByte(tag)(message) : message);
        let wrappedGets = 0;
        mitm.onRequest = (message) => ((wrappedGets += findItem(message, Tag.KeyWrappingSpecification) ? 1 : 0), message);
        await assert.rejects(agent.getKey('d', key.uid, 'protect'), code('KMIP_MAC_INVALID'));
        // Modify (the key has no nonce yet, not processed), then Add: one exchange, not retried.
        assert.equal(wrappedGets, 2, 'a bad MAC is not retried');
        assert.ok(!(await agent.listKeys()).some((k) => k.uniqueIdentifier === key.uid));
      } finally {
        await close();
      }
    });
  }

  it('a replayed earlier response (stale nonce) is rejected even though its MAC is valid', async () => {
    const key = await activeKey('nonce-replayed');
    const recorder = await openAgent();
    let recorded: TtlvItem | undefined;
    recorder.mitm.onResponse = (message) => ((recorded ??= getPayloadOf(message) && structuredClone(getPayloadOf(message))), message);
    await recorder.agent.getKey('d', key.uid, 'protect');
    await recorder.close();
    assert.ok(recorded, 'an honest MAC-wrapped response was recorded');
    const { agent, mitm, close } = await openAgent();
    try {
      mitm.onResponse = (message) => (getPayloadOf(message) ? replayGetPayload(recorded!)(message) : message);
      await assert.rejects(agent.getKey('d', key.uid, 'protect'), code('KMIP_NONCE_STALE'));
      assert.ok(!(await agent.listKeys()).some((k) => k.uniqueIdentifier === key.uid));
    } finally {
      await close();
    }
  });

  it('a nonce set by another client in between is never accepted: retried, and accepted when the nonce is ours', async () => {
    const key = await activeKey('nonce-raced');
    const { agent, mitm, close } = await openAgent();
    try {
      // Another client's nonce lands on the key instead of ours, on every attempt: rejected.
      mitm.onRequest = flipByte(Tag.AttributeValue);
      await assert.rejects(agent.getKey('d', key.uid, 'protect'), code('KMIP_NONCE_STALE'));
      // Only on the first attempt: the retry with a fresh nonce succeeds.
      let interfered = 0;
      mitm.onRequest = (message) => (interfered++ === 0 ? flipByte(Tag.AttributeValue)(message) : message);
      const got = await agent.getKey('d', key.uid, 'protect');
      assert.equal(toHex(got.material), key.material);
      assert.ok(interfered >= 2, 'the agent tried again');
    } finally {
      await close();
    }
  });
});
