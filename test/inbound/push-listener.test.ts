/**
 * The Put/Notify listener (ARCHITECTURE.md §3, invariant 6) with real parts: the development
 * server pushes over mutual TLS to the listener, which applies through the agent core on LevelDB
 * and relays to the device outboxes. Peers that are not the registered upstream are refused and
 * change nothing; the OASIS TC_NP cases' pushes are answered as they expect.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { freePort } from '../../src/bench/free-port.ts';
import { DeviceService } from '../../src/devices/device-service.ts';
import { DeviceRegistry } from '../../src/devices/registry.ts';
import { PushListener } from '../../src/inbound/push-listener.ts';
import { nameValue } from '../../src/kmip/attributes.ts';
import { buildRequestMessage, parseResponseMessage } from '../../src/kmip/message.ts';
import { notifyPayload } from '../../src/kmip/push.ts';
import { ObjectType, Operation, ResultReason, ResultStatus, State, Tag } from '../../src/kmip/tables.generated.ts';
import { parseKmipXml } from '../../src/kmip/xml.ts';
import { createLogger } from '../../src/log.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { tlsConnectionOptions } from '../../src/net/tls-options.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { TtlvConnection } from '../../src/net/ttlv-connection.ts';
import { dateTime, enumeration, structure, textString } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { TestCa } from '../helpers/certificates.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { messageMismatch, serverToClientExchanges } from '../helpers/conformance.ts';
import { CORPUS_DIR, substitutePlaceholders } from '../helpers/corpus.ts';
import { startDevServer } from '../helpers/dev-server.ts';
import { until } from '../helpers/until.ts';

type Identity = { cert: Buffer; key: Buffer };

/** The dev server pushing to an agent's listener; `pin` pins the upstream's certificate instead of its name. */
async function startPushedAgent(pin = false) {
  const listenPort = await freePort();
  const dev = await startDevServer({ pushTo: [{ host: '127.0.0.1', port: listenPort }], pushRetryMs: 50, pushMaxAttempts: 20, leaseSeconds: 600 });
  const file = (name: string) => readFileSync(join(dev.dir, name));
  const data = mkdtempSync(join(tmpdir(), 'kmip-edge-inbound-'));
  const client = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
  const admin = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
  // Debug-level logs of every part, kept to check that no key material reaches them.
  const logLines: string[] = [];
  const log = createLogger({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
  const agent = await AgentCore.open({ data, client, log });
  const registry = new DeviceRegistry(agent.store, agent.masterKey);
  const service = new DeviceService(agent, registry, agent.store, log);
  const listener = await PushListener.start({
    host: '127.0.0.1', port: listenPort, ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key'),
    upstream: pin ? { certificate: file('server.pem') } : { hostName: '127.0.0.1' },
    apply: (push) => service.applyAndRelay(push), log,
  });
  /** One message to the listener as `identity` (default: the upstream's own certificate). */
  const send = async (message: Uint8Array, identity: Identity = { cert: file('server.pem'), key: file('server.key') }, ca = file('ca.pem')): Promise<Uint8Array> => {
    const connection = await TtlvConnection.open(tlsConnectionOptions({ host: '127.0.0.1', port: listenPort, ca, ...identity }), 5000, 1 << 20);
    try {
      return await connection.roundTrip(message, 5000);
    } finally {
      connection.close();
    }
  };
  return {
    dev, admin, agent, registry, service, listener, send, file, logLines,
    async stop() {
      await service.close();
      await listener.close();
      await agent.close();
      await client.close();
      await admin.close();
      await dev.stop();
    },
  };
}

async function outboxSize(agent: AgentCore): Promise<number> {
  let n = 0;
  for await (const _ of agent.store.entries('outbox/')) n++;
  return n;
}

function pushMessage(operation: number, payload: ReturnType<typeof notifyPayload>): Uint8Array {
  return encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation, payload }], { timeStamp: new Date() }));
}

describe('Put and Notify from the development server, applied and acknowledged', () => {
  let g: Awaited<ReturnType<typeof startPushedAgent>>;
  before(async () => (g = await startPushedAgent()));
  after(() => g.stop());

  it('Put New installs the key with its lease; Put Replace retires the replaced key; both acknowledged', async () => {
    const first = await g.admin.create(ObjectType.SymmetricKey, aesKey('pushed-new'));
    await g.admin.activate(first);
    const [record] = await g.dev.server.put(first);
    assert.equal(record!.acknowledged, true, record!.lastError);
    const listed = (await g.agent.listKeys()).find((k) => k.uniqueIdentifier === first);
    assert.equal(listed?.state, State.Active);
    assert.deepEqual(listed?.names, ['pushed-new']);
    assert.ok(listed?.leaseExpiresAt !== undefined, 'the Lease Time attribute of the Put grants a lease');
    const key = await g.agent.getKey('d', first, 'protect');
    assert.equal(key.material.length, 32);
    await g.registry.add('put-watcher', { keys: [{ uniqueIdentifier: first }] }); // the relay's logs too

    const second = await g.admin.create(ObjectType.SymmetricKey, aesKey('pushed-replacement'));
    await g.admin.activate(second);
    const [replaced] = await g.dev.server.put(second, first);
    assert.equal(replaced!.acknowledged, true, replaced!.lastError);
    const uids = (await g.agent.listKeys()).map((k) => k.uniqueIdentifier);
    assert.ok(uids.includes(second) && !uids.includes(first), `${uids}`);
    // Replace naming a key the agent never held is a New.
    const third = await g.admin.create(ObjectType.SymmetricKey, aesKey('pushed-replaces-unknown'));
    assert.equal((await g.dev.server.put(third, 'never-held'))[0]!.acknowledged, true);
    assert.ok((await g.agent.listKeys()).some((k) => k.uniqueIdentifier === third));
    const logs = g.logLines.join('');
    assert.match(logs, /"msg":"push acknowledged"/);
    for (const form of [toHex(key.material), Buffer.from(key.material).toString('base64')]) assert.ok(!logs.includes(form), 'key material in the logs');
  });

  it('Notify changes the cached metadata; a deleted attribute (no value) is removed; a stale one is ignored', async () => {
    const uid = await g.admin.create(ObjectType.SymmetricKey, aesKey('notified'));
    await g.admin.activate(uid);
    await g.agent.getKey('d', uid, 'protect'); // cached
    await g.admin.addAttribute(uid, { name: 'Name', value: nameValue('second-name') });
    await until(async () => (await g.agent.listKeys()).find((k) => k.uniqueIdentifier === uid)?.names.includes('second-name') === true, 'the Notify of Add Attribute');
    await g.admin.revoke(uid, 1 /* Unspecified */);
    await until(async () => (await g.agent.listKeys()).find((k) => k.uniqueIdentifier === uid)?.state === State.Deactivated, 'the Notify of Revoke');
    await assert.rejects(g.agent.getKey('d', uid, 'protect'), (e: unknown) => (e as { code?: string }).code === 'KEY_DEACTIVATED');

    // Delete Attribute on the server: its Notify carries the attribute name without a value.
    await g.admin.deleteAttribute(uid, 'Name', 1);
    await g.admin.deleteAttribute(uid, 'Name', 0);
    await until(async () => (await g.agent.listKeys()).find((k) => k.uniqueIdentifier === uid)?.names.length === 0, 'the Notify of Delete Attribute');
    // Stale: an older Last Change Date than the cache's is acknowledged, not applied.
    const stale = await g.send(pushMessage(Operation.Notify, notifyPayload(uid, [{ name: 'State', value: enumeration(Tag.AttributeValue, State.Active) }, { name: 'Last Change Date', value: dateTime(Tag.AttributeValue, 1_000_000n) }])));
    assert.equal(parseResponseMessage(decodeTtlv(stale)).batchItems[0]!.resultStatus, ResultStatus.Success);
    assert.equal((await g.agent.listKeys()).find((k) => k.uniqueIdentifier === uid)?.state, State.Deactivated);
  });

  it('a push sent again is acknowledged again and not applied twice (one outbox entry per device)', async () => {
    await g.registry.add('dup-device', { keys: [{ name: 'dup-key' }] });
    const uid = await g.admin.create(ObjectType.SymmetricKey, aesKey('dup-key'));
    await g.agent.cache.get(uid);
    const before = await outboxSize(g.agent);
    const message = pushMessage(Operation.Notify, notifyPayload(uid, [{ name: 'Object Group', value: textString(Tag.AttributeValue, 'g1') }]));
    for (let i = 0; i < 3; i++) assert.equal(parseResponseMessage(decodeTtlv(await g.send(message))).batchItems[0]!.resultStatus, ResultStatus.Success);
    assert.equal(await outboxSize(g.agent), before + 1, 'one relay entry for the device, not three');
  });

  it('other operations get Operation Not Supported; a malformed message gets Invalid Message and the connection is closed', async () => {
    const other = parseResponseMessage(decodeTtlv(await g.send(pushMessage(Operation.Get, [textString(Tag.UniqueIdentifier, 'x')]))));
    assert.equal(other.batchItems[0]!.resultReason, ResultReason.OperationNotSupported);
    const notARequest = encodeTtlv(structure(Tag.ResponseMessage, [structure(Tag.ResponseHeader, [])]));
    const connection = await TtlvConnection.open(tlsConnectionOptions({ host: '127.0.0.1', port: g.listener.port, ca: g.file('ca.pem'), cert: g.file('server.pem'), key: g.file('server.key') }), 5000, 1 << 20);
    try {
      const answer = parseResponseMessage(decodeTtlv(await connection.roundTrip(notARequest, 5000)));
      assert.equal(answer.batchItems[0]!.resultReason, ResultReason.InvalidMessage);
      await assert.rejects(connection.roundTrip(pushMessage(Operation.Query, []), 2000), 'the listener closed the connection');
    } finally {
      connection.close();
    }
    // A Put without its object is refused item by item (not acknowledged: the server keeps it).
    const noObject = parseResponseMessage(decodeTtlv(await g.send(pushMessage(Operation.Put, [textString(Tag.UniqueIdentifier, 'x'), enumeration(Tag.PutFunction, 1)]))));
    assert.equal(noObject.batchItems[0]!.resultReason, ResultReason.InvalidMessage);
  });

  it('refuses a certificate from the right CA that is not the upstream, and one from another CA; nothing changes', async () => {
    const uid = await g.admin.create(ObjectType.SymmetricKey, aesKey('guarded'));
    await g.agent.cache.get(uid);
    const forged = pushMessage(Operation.Notify, notifyPayload(uid, [{ name: 'State', value: enumeration(Tag.AttributeValue, State.Compromised) }]));
    const sameCa = new TestCa('dev', g.dev.dir).issue('intruder', 'client');
    const otherCa = new TestCa('other CA');
    const foreign = otherCa.issue('localhost', 'server');
    const refusedBefore = g.listener.counts.refused;
    await assert.rejects(g.send(forged, sameCa));
    await assert.rejects(g.send(forged, foreign, Buffer.concat([g.file('ca.pem'), otherCa.cert])));
    await until(() => g.listener.counts.refused >= refusedBefore + 2, 'both refusals counted');
    assert.notEqual((await g.agent.listKeys()).find((k) => k.uniqueIdentifier === uid)?.state, State.Compromised);
  });
});

describe('a pinned upstream certificate', () => {
  it('accepts only that certificate: the agent-side certificate of the same CA, valid for 127.0.0.1, is refused', async () => {
    const g = await startPushedAgent(true);
    try {
      const uid = await g.admin.create(ObjectType.SymmetricKey, aesKey('pinned'));
      await g.agent.cache.get(uid);
      const message = pushMessage(Operation.Notify, notifyPayload(uid, [{ name: 'Name', value: nameValue('renamed-by-intruder') }]));
      await assert.rejects(g.send(message, { cert: g.file('client.pem'), key: g.file('client.key') }));
      assert.equal(g.listener.counts.refused, 1);
      assert.equal(parseResponseMessage(decodeTtlv(await g.send(message))).batchItems[0]!.resultStatus, ResultStatus.Success);
      assert.ok((await g.agent.listKeys()).find((k) => k.uniqueIdentifier === uid)?.names.includes('renamed-by-intruder'));
    } finally {
      await g.stop();
    }
  });
});

describe('OASIS TC_NP_1 and TC_NP_2: the server-to-client requests answered as the cases expect', () => {
  const files = readdirSync(CORPUS_DIR).filter((v) => /^v1\.\d$/.test(v)).flatMap((v) => readdirSync(CORPUS_DIR + v).filter((f) => /^TC[_-]NP[_-][12][_-]/.test(f)).map((f) => `${v}/${f}`));
  it('finds the cases', () => assert.ok(files.length >= 6, `${files}`));
  for (const file of files) {
    it(file, async () => {
      // A fresh agent per case: each case is its own session, and its $UNIQUE_IDENTIFIER_0 its own
      // object — one agent would see one identifier carry other key material in the next case
      // (refused since issue #13.4).
      const g = await startPushedAgent();
      try {
        const exchanges = serverToClientExchanges(CORPUS_DIR + file);
        assert.ok(exchanges.length >= 1);
        for (const { request, response } of exchanges) {
          const answer = await g.send(encodeTtlv(parseKmipXml(substitutePlaceholders(request))));
          const mismatch = messageMismatch(substitutePlaceholders(response), answer);
          assert.equal(mismatch, undefined, `${file}: ${mismatch}`);
        }
        const put = exchanges.find((e) => /value="Put"/.test(e.request));
        if (put) assert.ok((await g.agent.listKeys()).some((k) => k.uniqueIdentifier === 'uid-0'), 'the Put key is cached');
      } finally {
        await g.stop();
      }
    });
  }
});

describe('listener limits', () => {
  it('a message of exactly the size limit is read; one byte-aligned step over is answered Invalid Message and the connection closed', async () => {
    const dev = await startDevServer();
    const file = (name: string) => readFileSync(join(dev.dir, name));
    const applied: string[] = [];
    const listener = await PushListener.start({
      host: '127.0.0.1', port: 0, ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key'), upstream: { hostName: '127.0.0.1' },
      apply: async (push) => void applied.push(push.uniqueIdentifier), maxMessageBytes: 1024,
    });
    const connect = () => TtlvConnection.open(tlsConnectionOptions({ host: '127.0.0.1', port: listener.port, ca: file('ca.pem'), cert: file('server.pem'), key: file('server.key') }), 5000, 1 << 20);
    /** A Notify padded with an x- attribute to exactly `size` bytes. */
    const sized = (size: number) => {
      const base = pushMessage(Operation.Notify, notifyPayload('limit-key', [{ name: 'x-Pad', value: textString(Tag.AttributeValue, '') }]));
      return pushMessage(Operation.Notify, notifyPayload('limit-key', [{ name: 'x-Pad', value: textString(Tag.AttributeValue, 'p'.repeat(size - base.length)) }]));
    };
    try {
      assert.equal(sized(1024).length, 1024);
      const atLimit = await connect();
      assert.equal(parseResponseMessage(decodeTtlv(await atLimit.roundTrip(sized(1024), 5000))).batchItems[0]!.resultStatus, ResultStatus.Success);
      atLimit.close();
      const over = await connect();
      const answer = parseResponseMessage(decodeTtlv(await over.roundTrip(sized(1032), 5000)));
      assert.equal(answer.batchItems[0]!.resultReason, ResultReason.InvalidMessage);
      await assert.rejects(over.roundTrip(sized(1024), 2000), 'closed after the oversize message');
      over.close();
      assert.deepEqual(applied, ['limit-key']);
    } finally {
      await listener.close();
      await dev.stop();
    }
  });
});
