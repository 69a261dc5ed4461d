/**
 * `kmip-edge demo` — the whole gateway on one machine, on embedded defaults (README command 1):
 * the development KMIP server (its own PKI in a temporary folder) as the enterprise key server;
 * the agent — store and master key, key cache with nonce-MAC fills, usage-allocation ledger,
 * device service, Put/Notify listener — with the embedded MQTT broker; and two simulated devices
 * speaking the device protocol over MQTT. Every hop is the real one (mutual TLS, LevelDB on disk,
 * AEAD frames over MQTT). Key material is never printed: keys are shown by SHA-256 fingerprint.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentCore } from '../agent/agent-core.ts';
import { freePort } from '../bench/free-port.ts';
import { ensureDevPki } from '../devserver/pki.ts';
import { DevKmipServer } from '../devserver/server.ts';
import { DeviceClient, memoryCounters } from '../devices/device-client.ts';
import type { DeviceRequester } from '../devices/device-requester.ts';
import { DeviceService } from '../devices/device-service.ts';
import { startEmbeddedBroker } from '../devices/embedded-broker.ts';
import { MqttDevice } from '../devices/mqtt-device.ts';
import { connectMqtt, MqttDeviceTransport } from '../devices/mqtt-transport.ts';
import { DeviceRegistry, type Device } from '../devices/registry.ts';
import { verifiedGet } from '../devices/verified-get.ts';
import { PushListener } from '../inbound/push-listener.ts';
import { nameValue, type Attribute } from '../kmip/attributes.ts';
import { buildRequestMessage, type RequestMessage } from '../kmip/message.ts';
import { keyBlockOf, keyMaterialOf, payload, readGet } from '../kmip/payloads.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Operation, ResultStatus, Tag, UsageLimitsUnit } from '../kmip/tables.generated.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import { silentLogger } from '../log.ts';
import { TlsPool } from '../net/tls-pool.ts';
import { enumeration, integer, longInteger, structure } from '../ttlv/build.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { KmipClient } from '../upstream/client.ts';

const fingerprint = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

function key(name: string, algorithm: number, usage: number, extra: Attribute[] = []): Attribute[] {
  return [
    { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, algorithm) },
    { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
    { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, usage) },
    { name: 'Name', value: nameValue(name) },
    ...extra,
  ];
}

/** A simulated device on the broker, and the pushes it has acknowledged. */
async function simulatedDevice(device: Device, broker: { host: string; port: number }) {
  const mqtt = await connectMqtt({ host: broker.host, port: broker.port, clientId: `demo-${device.id}` });
  const requester = await MqttDevice.attach(mqtt, new DeviceClient(device.id, device.key, device.suite, memoryCounters()));
  const pushes: RequestMessage[] = [];
  requester.onPush = (request) => pushes.push(request);
  return { requester, pushes, close: () => void mqtt.end(true) };
}

async function ask(device: DeviceRequester, operation: number, items: ReturnType<typeof payload.get>) {
  return (await device.request(encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation, payload: items }])))).batchItems[0]!;
}

const outcome = (item: { resultStatus: number; resultMessage?: string | undefined }) => (item.resultStatus === ResultStatus.Success ? 'served' : `refused (${item.resultMessage})`);

export async function runDemo(_args: string[], out: (text: string) => void): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-demo-'));
  const step = (text: string): void => out(`  ${text}\n`);
  const problems: string[] = [];
  const check = (ok: boolean, what: string) => void (ok || problems.push(what));
  out('kmip-edge demo — key server, gateway agent and two devices on this machine\n');
  const pki = ensureDevPki(join(dir, 'kms'));
  const listenPort = await freePort();
  const server = new DevKmipServer(pki, { leaseSeconds: 3600, pushTo: [{ host: '127.0.0.1', port: listenPort }] });
  const port = await server.listen(0);
  step(`key server (development KMIP server) on 127.0.0.1:${port}, mutual TLS; certificates in ${join(dir, 'kms')}`);
  const endpoint = { host: '127.0.0.1', port, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) };
  const admin = new KmipClient({ transport: new TlsPool(endpoint), version: { major: 1, minor: 2 } });
  const client = new KmipClient({ transport: new TlsPool(endpoint, { maxConnections: 2 }) });
  let serverRunning = true;
  const stopServer = async () => void (serverRunning && ((serverRunning = false), await server.close()));
  const closers: (() => Promise<void> | void)[] = [() => admin.close(), stopServer];
  try {
    // The key server's administrator: a tape key with a usage limit, and an HMAC key for nonce-MAC.
    const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 100_000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]);
    const tapeKey = await admin.create(ObjectType.SymmetricKey, key('tape-key', CryptographicAlgorithm.AES, CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt, [{ name: 'Usage Limits', value: limits }]));
    await admin.activate(tapeKey);
    const macKey = await admin.create(ObjectType.SymmetricKey, key('mac-key', CryptographicAlgorithm.HMAC_SHA256, CryptographicUsageMask.MACGenerate | CryptographicUsageMask.MACVerify));
    const sensorKey = await admin.create(ObjectType.SymmetricKey, key('sensor-key', CryptographicAlgorithm.AES, CryptographicUsageMask.Encrypt));
    await admin.activate(sensorKey);
    const serverMaterial = async (uid: string) => fingerprint(keyMaterialOf(keyBlockOf((await admin.get(uid)).object)));
    step(`created keys: tape-key ${tapeKey} (usage limit 100000 bytes), sensor-key ${sensorKey}, HMAC-SHA256 mac-key ${macKey}`);

    // The gateway agent.
    const agent = await AgentCore.open({ data: join(dir, 'agent'), client, log: silentLogger, ledger: { minChunk: 1000n, maxChunk: 4000n }, nonceMac: { defaultMacKey: macKey } });
    closers.unshift(async () => {
      await agent.close();
      await client.close();
    });
    const registry = new DeviceRegistry(agent.store, agent.masterKey);
    const service = new DeviceService(agent, registry, agent.store, silentLogger, { retryMs: 200, maxRetryMs: 1000 });
    closers.unshift(() => service.close());
    const broker = await startEmbeddedBroker();
    closers.unshift(() => broker.close());
    const transport = await MqttDeviceTransport.start(broker, (frame, id, send) => service.handle(frame, id, send));
    service.relay.defaultRoute = (id) => (frame) => transport.sendTo(id, frame);
    closers.unshift(() => transport.close());
    const listener = await PushListener.start({
      host: '127.0.0.1', port: listenPort, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey),
      upstream: { hostName: '127.0.0.1' }, apply: (push) => service.applyAndRelay(push),
    });
    closers.unshift(() => listener.close());
    step(`agent: LevelDB store and sealed master key in ${join(dir, 'agent')}; embedded MQTT broker on 127.0.0.1:${broker.port}; Put/Notify listener on 127.0.0.1:${listenPort}`);

    const tapeDevice = await registry.add('tape-drive-7', { keys: [{ name: 'tape-key' }] });
    const sensorDevice = await registry.add('sensor-1', { suite: 2, keys: [{ uniqueIdentifier: sensorKey }, { uniqueIdentifier: macKey }] });
    const tape = await simulatedDevice(tapeDevice, broker);
    const sensor = await simulatedDevice(sensorDevice, broker);
    closers.unshift(() => tape.close(), () => sensor.close());
    step('devices: tape-drive-7 (AES-256-GCM frames, may use keys named tape-key) and sensor-1 (ChaCha20-Poly1305, sensor-key)');

    // 1. A key, fetched by the agent with nonce-MAC and served from its cache.
    const got = await ask(tape.requester, Operation.Get, payload.get(tapeKey));
    const gotFingerprint = got.payload ? fingerprint(keyMaterialOf(keyBlockOf(readGet(got.payload).object))) : 'none';
    const same = gotFingerprint === (await serverMaterial(tapeKey));
    check(same, 'the tape key served differs from the server');
    step(`tape-drive-7 Get tape-key: ${outcome(got)}, fingerprint ${gotFingerprint} ${same ? '= the key server\'s' : '≠ the key server\'s'} (the agent set x-Nonce and verified the HMAC before caching it)`);

    // 2. Usage allocations from the agent's ledger, refilled upstream in small chunks.
    const grants = [];
    for (let i = 0; i < 3; i++) grants.push(outcome(await ask(tape.requester, Operation.GetUsageAllocation, payload.getUsageAllocation(tapeKey, 300n))));
    const totals = await agent.ledger.totals(tapeKey);
    check(totals.grantedToDevices === 900n && totals.allocatedFromUpstream >= 900n, 'ledger totals');
    step(`tape-drive-7 Get Usage Allocation 300 bytes ×3: ${grants.join(', ')}; ledger: ${totals.allocatedFromUpstream} allocated from upstream, ${totals.grantedToDevices} granted to devices`);
    const lease = await ask(tape.requester, Operation.ObtainLease, payload.obtainLease(tapeKey));
    step(`tape-drive-7 Obtain Lease: ${outcome(lease)}`);

    // 3. End-to-end nonce-MAC: the device sets its own nonce and verifies the HMAC itself.
    const macBytes = keyMaterialOf(keyBlockOf((await admin.get(macKey)).object)); // provisioned on the device
    const verified = await verifiedGet(sensor.requester, sensorKey, macKey, macBytes);
    check(verified.ok, 'end-to-end nonce-MAC');
    step(`sensor-1 nonce-MAC Get of sensor-key: ${verified.ok ? `HMAC and its own x-Nonce verified at the device, fingerprint ${fingerprint(verified.material)}` : `REJECTED (${verified.error})`}`);
    const forbidden = await ask(sensor.requester, Operation.Get, payload.get(tapeKey));
    check(forbidden.resultStatus !== ResultStatus.Success, 'sensor-1 got a key outside its allow-list');
    step(`sensor-1 Get tape-key (not on its allow-list): ${outcome(forbidden)}`);

    // 4. The key server replaces the tape key: Put Replace, acknowledged by the agent once on disk, relayed to the device.
    const newTapeKey = await admin.create(ObjectType.SymmetricKey, key('tape-key', CryptographicAlgorithm.AES, CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt, [{ name: 'Usage Limits', value: limits }]));
    await admin.activate(newTapeKey);
    const before = tape.pushes.length;
    const [record] = await server.put(newTapeKey, tapeKey);
    for (let i = 0; i < 100 && !tape.pushes.slice(before).some((p) => p.batchItems[0]!.operation === Operation.Put); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    const relayed = tape.pushes.slice(before).find((p) => p.batchItems[0]!.operation === Operation.Put);
    check(record?.acknowledged === true && relayed !== undefined, 'the Put was not acknowledged and relayed');
    step(`key server Put Replace ${tapeKey} → ${newTapeKey}: ${record?.acknowledged ? 'acknowledged by the agent' : 'NOT acknowledged'}; relayed to tape-drive-7: ${relayed ? `${enumerationText(Tag.Operation, relayed.batchItems[0]!.operation)} received and acknowledged` : 'NOT received'}`);

    const firstGrant = await ask(tape.requester, Operation.GetUsageAllocation, payload.getUsageAllocation(newTapeKey, 100n));
    step(`tape-drive-7 Get Usage Allocation 100 bytes of the new key: ${outcome(firstGrant)} (the agent now holds a chunk of it)`);

    // 5. The key server goes away: the devices keep working from the cache, leases and allocations.
    await stopServer();
    const offlineGet = await ask(tape.requester, Operation.Get, payload.get(newTapeKey));
    const offlineGrant = await ask(tape.requester, Operation.GetUsageAllocation, payload.getUsageAllocation(newTapeKey, 100n));
    const retired = await ask(tape.requester, Operation.Get, payload.get(tapeKey));
    check(offlineGet.resultStatus === ResultStatus.Success && offlineGrant.resultStatus === ResultStatus.Success, 'offline Get and allocation');
    step(`key server stopped — tape-drive-7 Get of the new key: ${outcome(offlineGet)} from the cache; 100 more bytes: ${outcome(offlineGrant)} from the agent's allocation; the replaced key: ${outcome(retired)}`);

    out(problems.length === 0 ? 'demo complete\n' : `demo found a problem: ${problems.join('; ')}\n`);
    return problems.length === 0 ? 0 : 1;
  } finally {
    for (const close of closers) await close();
    rmSync(dir, { recursive: true, force: true });
  }
}
