/**
 * Foreign key material by Put (issue #13.4): a Put for a Unique Identifier the agent already holds
 * with DIFFERENT key material is refused — even over a connection with the upstream's own
 * certificate — logged at error level, not applied, not relayed to devices; devices keep getting
 * the upstream's key. The same material again (a resent or refreshed Put) is still acknowledged,
 * and a new key comes as a Put Replace with a new identifier.
 * Real parts: the development server (upstream and pusher) over mutual TLS, LevelDB on disk.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { freePort } from '../../src/bench/free-port.ts';
import { DeviceService } from '../../src/devices/device-service.ts';
import { DeviceRegistry } from '../../src/devices/registry.ts';
import { PushListener } from '../../src/inbound/push-listener.ts';
import { nameValue } from '../../src/kmip/attributes.ts';
import { buildRequestMessage, parseRequestMessage, parseResponseMessage } from '../../src/kmip/message.ts';
import { putPayload, readPush } from '../../src/kmip/push.ts';
import { ObjectType, Operation, ResultReason, ResultStatus, State, Tag } from '../../src/kmip/tables.generated.ts';
import { createLogger } from '../../src/log.ts';
import { tlsConnectionOptions } from '../../src/net/tls-options.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { TtlvConnection } from '../../src/net/ttlv-connection.ts';
import { byteString, enumeration, integer, structure } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { startDevServer } from '../helpers/dev-server.ts';

/** The request payload of a one-item message built by `put`. */
function childrenOfPayload(message: Uint8Array) {
  return parseRequestMessage(decodeTtlv(message)).batchItems[0]!.payload;
}

function put(uid: string, material: Uint8Array, replaces?: string): Uint8Array {
  const object = structure(Tag.SymmetricKey, [structure(Tag.KeyBlock, [enumeration(Tag.KeyFormatType, 1), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, material)]), enumeration(Tag.CryptographicAlgorithm, 3), integer(Tag.CryptographicLength, 256)])]);
  const attributes = [{ name: 'Name', value: nameValue(`put-${uid}`) }, { name: 'State', value: enumeration(Tag.AttributeValue, State.Active) }];
  return encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Put, payload: putPayload(uid, object, attributes, replaces) }], { timeStamp: new Date() }));
}

describe('a Put with other key material for an identifier the agent holds', () => {
  let dev: Awaited<ReturnType<typeof startDevServer>>;
  let agent: AgentCore;
  let listener: PushListener;
  let service: DeviceService;
  let registry: DeviceRegistry;
  let client: KmipClient;
  let admin: KmipClient;
  const lines: { level: number; event?: string; msg: string }[] = [];
  const file = (name: string) => readFileSync(join(dev.dir, name));
  /** One message with the upstream's own certificate (what the listener accepts). */
  const send = async (message: Uint8Array) => {
    const connection = await TtlvConnection.open(tlsConnectionOptions({ host: '127.0.0.1', port: listener.port, ca: file('ca.pem'), cert: file('server.pem'), key: file('server.key') }), 5000, 1 << 20);
    try {
      return parseResponseMessage(decodeTtlv(await connection.roundTrip(message, 5000))).batchItems[0]!;
    } finally {
      connection.close();
    }
  };
  const outbox = async () => {
    let n = 0;
    for await (const _ of agent.store.entries('outbox/')) n++;
    return n;
  };

  before(async () => {
    const listenPort = await freePort();
    dev = await startDevServer({ pushTo: [{ host: '127.0.0.1', port: listenPort }], pushRetryMs: 50, pushMaxAttempts: 3, leaseSeconds: 600 });
    client = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
    admin = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
    const log = createLogger({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
    agent = await AgentCore.open({ data: mkdtempSync(join(tmpdir(), 'kmip-edge-foreign-')), client, log });
    registry = new DeviceRegistry(agent.store, agent.masterKey);
    service = new DeviceService(agent, registry, agent.store, log);
    listener = await PushListener.start({
      host: '127.0.0.1', port: listenPort, ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key'),
      upstream: { certificate: file('server.pem') }, apply: (push) => service.applyAndRelay(push), log,
    });
  });
  after(async () => {
    await service.close();
    await listener.close();
    await agent.close();
    await client.close();
    await admin.close();
    await dev.stop();
  });

  it('is refused (Illegal Operation), logged at error level, not applied and not relayed — from the upstream\'s own certificate', async () => {
    const uid = await admin.create(ObjectType.SymmetricKey, aesKey('held-key'));
    await admin.activate(uid);
    await registry.add('watcher', { keys: [{ uniqueIdentifier: uid }] });
    const genuine = toHex((await agent.getKey('watcher', uid, 'process')).material); // cached from the upstream
    const outboxBefore = await outbox();

    const answer = await send(put(uid, new Uint8Array(32).fill(0x41)));
    assert.equal(answer.resultStatus, ResultStatus.OperationFailed);
    assert.equal(answer.resultReason, ResultReason.IllegalOperation);
    assert.match(answer.resultMessage ?? '', /other key material/);
    assert.equal(toHex((await agent.getKey('watcher', uid, 'process')).material), genuine, 'devices still get the upstream\'s key');
    assert.equal(toHex(agent.cache.useFromMemory(uid, 'process')!.material), genuine);
    assert.equal(await outbox(), outboxBefore, 'nothing relayed to the device');
    const logged = lines.filter((l) => l.event === 'push-foreign-material');
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.level, 50, 'error level');
    assert.ok(!JSON.stringify(lines).includes('4141414141'), 'the pushed material is not logged');

    // The same material again (the dev server's own Put of the key): acknowledged, as before.
    const [record] = await dev.server.put(uid);
    assert.equal(record!.acknowledged, true, record!.lastError);
    assert.equal(await send(put(uid, Buffer.from(genuine, 'hex'))).then((a) => a.resultStatus), ResultStatus.Success);
    // A new key comes with a new identifier: Put Replace.
    assert.equal((await send(put(`${uid}-next`, new Uint8Array(32).fill(0x42), uid))).resultStatus, ResultStatus.Success);
    assert.equal(toHex((await agent.getKey('watcher', `${uid}-next`, 'process')).material), '42'.repeat(32));
    assert.equal(agent.cache.useFromMemory(uid, 'process'), undefined, 'the replaced key is retired');
  });

  it('a key held on disk only (after a restart) is checked the same way', async () => {
    const data = mkdtempSync(join(tmpdir(), 'kmip-edge-foreign-disk-'));
    const pushOf = (material: Uint8Array) => readPush(Operation.Put, childrenOfPayload(put('disk-held', material)));
    let core = await AgentCore.open({ data, client });
    assert.equal(await core.applyPush(pushOf(new Uint8Array(32).fill(0x11))), 'applied');
    await core.close();
    core = await AgentCore.open({ data, client }); // the key is on disk, not in memory
    try {
      await assert.rejects(core.applyPush(pushOf(new Uint8Array(32).fill(0x41))), { code: 'PUSH_FOREIGN_MATERIAL' });
      assert.equal(toHex((await core.getKey('d', 'disk-held', 'process')).material), '11'.repeat(32));
    } finally {
      await core.close();
    }
  });
});
