/**
 * The demo's gateway on one machine, every hop the real one: the development KMIP server (its own
 * PKI) as the enterprise key server, reached through a cuttable link (./cut-proxy.ts) over mutual
 * TLS; the agent — LevelDB store and sealed master key, key cache with nonce-MAC fills, ledger,
 * device service, Put/Notify listener, the admin socket `kmip-edge status --data` talks to — with
 * the embedded MQTT broker; and two simulated devices speaking the device protocol over MQTT.
 * Key material is never printed: keys are shown by SHA-256 fingerprint.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentCore } from '../agent/agent-core.ts';
import { freePort } from '../bench/free-port.ts';
import { serveDeviceAdmin } from '../cli/device-admin.ts';
import { ensureDevPki } from '../devserver/pki.ts';
import { DevKmipServer } from '../devserver/server.ts';
import { DeviceClient, memoryCounters } from '../devices/device-client.ts';
import type { DeviceRequester } from '../devices/device-requester.ts';
import { DeviceService } from '../devices/device-service.ts';
import { startEmbeddedBroker } from '../devices/embedded-broker.ts';
import { MqttDevice } from '../devices/mqtt-device.ts';
import { connectMqtt, MqttDeviceTransport } from '../devices/mqtt-transport.ts';
import { DeviceRegistry, type Device } from '../devices/registry.ts';
import { PushListener } from '../inbound/push-listener.ts';
import { nameValue, type Attribute } from '../kmip/attributes.ts';
import { buildRequestMessage, type RequestMessage } from '../kmip/message.ts';
import { keyBlockOf, keyMaterialOf, type payload } from '../kmip/payloads.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Tag, UsageLimitsUnit } from '../kmip/tables.generated.ts';
import { silentLogger } from '../log.ts';
import { AgentWatch } from '../metrics/agent-watch.ts';
import { TlsPool } from '../net/tls-pool.ts';
import { enumeration, integer, longInteger, structure } from '../ttlv/build.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { KmipClient } from '../upstream/client.ts';
import type { AgentStatus } from '../cli/status-command.ts';
import { CutProxy } from './cut-proxy.ts';

export const fingerprint = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

/** The tape key's usage limit at the key server (bytes). */
export const TAPE_LIMIT = 10_000_000n;

function keyAttributes(name: string, algorithm: number, usage: number, extra: Attribute[] = []): Attribute[] {
  return [
    { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, algorithm) },
    { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
    { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, usage) },
    { name: 'Name', value: nameValue(name) },
    ...extra,
  ];
}

/** What one simulated device did last, for the live view. */
/** The tape key as the key server's administrator creates it (and its replacement). */
export function tapeKeyAttributes(): Attribute[] {
  const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, TAPE_LIMIT), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]);
  return keyAttributes('tape-key', CryptographicAlgorithm.AES, CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt, [{ name: 'Usage Limits', value: limits }]);
}

export interface DeviceActivity {
  id: string;
  lastRequest: string;
  lastResult: string;
  at: number;
  requests: number;
  pushesReceived: number;
}

export interface SimulatedDevice {
  readonly id: string;
  readonly requester: DeviceRequester;
  /** Pushes relayed to the device (acknowledged by it on receipt). */
  readonly pushes: RequestMessage[];
  readonly activity: DeviceActivity;
  close(): void;
}

async function simulatedDevice(device: Device, broker: { host: string; port: number }): Promise<SimulatedDevice> {
  const mqtt = await connectMqtt({ host: broker.host, port: broker.port, clientId: `demo-${device.id}` });
  const requester = await MqttDevice.attach(mqtt, new DeviceClient(device.id, device.key, device.suite, memoryCounters()));
  const pushes: RequestMessage[] = [];
  const activity: DeviceActivity = { id: device.id, lastRequest: '-', lastResult: '-', at: 0, requests: 0, pushesReceived: 0 };
  requester.onPush = (request) => {
    pushes.push(request);
    activity.pushesReceived++;
  };
  return { id: device.id, requester, pushes, activity, close: () => void mqtt.end(true) };
}

/** One request of a device to the agent, its first batch item back. */
export async function ask(device: SimulatedDevice, label: string, operation: number, items: ReturnType<typeof payload.get>) {
  device.activity.lastRequest = label;
  device.activity.requests++;
  const item = (await device.requester.request(encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation, payload: items }])))).batchItems[0]!;
  device.activity.lastResult = item.resultStatus === 0 ? 'served' : `refused: ${item.resultMessage ?? item.resultReason}`;
  device.activity.at = Date.now();
  return item;
}

export interface Gateway {
  dir: string;
  server: DevKmipServer;
  /** The key server's administrator (its own connection, not through the cut link). */
  admin: KmipClient;
  link: CutProxy;
  agent: AgentCore;
  service: DeviceService;
  registry: DeviceRegistry;
  kmsPort: number;
  brokerPort: number;
  pushPort: number;
  keys: { tape: string; mac: string; sensor: string };
  tape: SimulatedDevice;
  sensor: SimulatedDevice;
  serverMaterial(uid: string): Promise<string>;
  /** What `kmip-edge status --data DIR/agent` answers. */
  status(): Promise<AgentStatus>;
  close(): Promise<void>;
}

export async function startGateway(dir: string): Promise<Gateway> {
  const closers: (() => Promise<void> | void)[] = [];
  const close = async () => {
    for (const step of closers.splice(0).reverse()) await Promise.resolve().then(step).catch(() => undefined);
  };
  try {
    const pki = ensureDevPki(join(dir, 'kms'));
    const pushPort = await freePort();
    const server = new DevKmipServer(pki, { leaseSeconds: 3600, pushTo: [{ host: '127.0.0.1', port: pushPort }], pushRetryMs: 200 });
    const kmsPort = await server.listen(0);
    closers.push(() => server.close());
    const tls = { ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) };
    const admin = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port: kmsPort, ...tls }), version: { major: 1, minor: 2 } });
    closers.push(() => admin.close());
    const link = await CutProxy.start({ host: '127.0.0.1', port: kmsPort });
    closers.push(() => link.close());

    // The key server's administrator: a tape key with a usage limit, an HMAC key for nonce-MAC, a sensor key.
    const tapeKey = await admin.create(ObjectType.SymmetricKey, tapeKeyAttributes());
    await admin.activate(tapeKey);
    const macKey = await admin.create(ObjectType.SymmetricKey, keyAttributes('mac-key', CryptographicAlgorithm.HMAC_SHA256, CryptographicUsageMask.MACGenerate | CryptographicUsageMask.MACVerify));
    const sensorKey = await admin.create(ObjectType.SymmetricKey, keyAttributes('sensor-key', CryptographicAlgorithm.AES, CryptographicUsageMask.Encrypt));
    await admin.activate(sensorKey);

    // The agent, reaching the key server through the link.
    const watch = new AgentWatch(silentLogger, `127.0.0.1:${link.port}`);
    const client = new KmipClient({ transport: watch.transport(new TlsPool({ host: '127.0.0.1', port: link.port, ...tls }, { maxConnections: 2 })) });
    closers.push(() => client.close());
    const agent = await AgentCore.open({
      data: join(dir, 'agent'), client, log: silentLogger, breaker: watch.breaker,
      // small refill chunks, topped up early: the ledger's refills show in the view
      ledger: { minChunk: 4096n, maxChunk: 16_384n, chunkSeconds: 5, lowWaterChunks: 2 },
      nonceMac: { defaultMacKey: macKey },
    });
    closers.push(() => agent.close());
    const registry = new DeviceRegistry(agent.store, agent.masterKey);
    const service = new DeviceService(agent, registry, agent.store, silentLogger, { retryMs: 200, maxRetryMs: 1000 });
    watch.attach({ agent, service });
    closers.push(() => service.close());
    const broker = await startEmbeddedBroker();
    closers.push(() => broker.close());
    const transport = await MqttDeviceTransport.start(broker, (frame, id, send) => service.handle(frame, id, send));
    service.relay.defaultRoute = (id) => (frame) => transport.sendTo(id, frame);
    watch.attachMqtt(() => transport.state === 'connected');
    closers.push(() => transport.close());
    const listener = await PushListener.start({
      host: '127.0.0.1', port: pushPort, ...tls,
      upstream: { hostName: '127.0.0.1' }, apply: watch.pushes((push) => service.applyAndRelay(push)),
    });
    closers.push(() => listener.close());
    const queries = watch.queries(agent, registry);
    const adminSocket = await serveDeviceAdmin(join(dir, 'agent'), registry, (id) => service.forget(id), queries, silentLogger);
    closers.push(() => new Promise<void>((resolve) => adminSocket.close(() => resolve())));
    watch.serving();

    const tapeDevice = await registry.add('tape-drive-7', { keys: [{ name: 'tape-key' }] });
    const sensorDevice = await registry.add('sensor-1', { suite: 2, keys: [{ uniqueIdentifier: sensorKey }, { uniqueIdentifier: macKey }] });
    const tape = await simulatedDevice(tapeDevice, broker);
    closers.push(() => tape.close());
    const sensor = await simulatedDevice(sensorDevice, broker);
    closers.push(() => sensor.close());

    return {
      dir, server, admin, link, agent, service, registry, kmsPort, brokerPort: broker.port, pushPort,
      keys: { tape: tapeKey, mac: macKey, sensor: sensorKey }, tape, sensor,
      serverMaterial: async (uid) => fingerprint(keyMaterialOf(keyBlockOf((await admin.get(uid)).object))),
      status: async () => (await queries.status!()) as unknown as AgentStatus,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
