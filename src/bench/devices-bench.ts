/**
 * Devices benchmark (CLI.md `bench devices`): key fetches (cache hits) by 1, 100 and 1,000
 * simulated devices over a real Mosquitto broker, each device one request at a time — throughput,
 * p50 and p99 — next to the baseline measured in the same run on the same broker: a bare MQTT echo
 * responder answering the same number of devices sending frame-sized payloads.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from './free-port.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { AgentCore } from '../agent/agent-core.ts';
import { ensureDevPki } from '../devserver/pki.ts';
import { DevKmipServer } from '../devserver/server.ts';
import { DeviceClient, memoryCounters } from '../devices/device-client.ts';
import { DeviceService } from '../devices/device-service.ts';
import { MqttDevice } from '../devices/mqtt-device.ts';
import { connectMqtt, MqttDeviceTransport } from '../devices/mqtt-transport.ts';
import { DeviceRegistry } from '../devices/registry.ts';
import { KmipEdgeError } from '../errors.ts';
import { nameValue } from '../kmip/attributes.ts';
import { buildRequestMessage } from '../kmip/message.ts';
import { payload } from '../kmip/payloads.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Operation, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { silentLogger } from '../log.ts';
import { TlsPool } from '../net/tls-pool.ts';
import { enumeration, integer } from '../ttlv/build.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { KmipClient } from '../upstream/client.ts';
import { readFileSync } from 'node:fs';

const MOSQUITTO = '/usr/sbin/mosquitto';

async function startBroker(dir: string): Promise<{ port: number; stop: () => void }> {
  if (!existsSync(MOSQUITTO)) throw new KmipEdgeError('BENCH_UNAVAILABLE', 'bench devices needs Mosquitto (sudo scripts/install-peers.sh)');
  const port = await freePort();
  writeFileSync(join(dir, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nmax_queued_messages 10000\n`);
  const child = spawn(MOSQUITTO, ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => (socket.destroy(), resolve(true)));
      socket.on('error', () => resolve(false));
    });
    if (up) return { port, stop: () => void child.kill('SIGTERM') };
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  child.kill('SIGKILL');
  throw new KmipEdgeError('BENCH_UNAVAILABLE', 'Mosquitto did not start');
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Measurement {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

/** Runs `devices` loops of `one()` for `seconds`; each loop one request at a time. */
async function drive(loops: (() => Promise<void>)[], seconds: number): Promise<Measurement> {
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(loops.map(async (one) => {
    while (performance.now() < deadline) {
      const t = performance.now();
      await one();
      latencies.push(performance.now() - t);
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { requestsPerSec: Math.round(latencies.length / elapsed), p50Ms: Number(percentile(latencies, 50).toFixed(3)), p99Ms: Number(percentile(latencies, 99).toFixed(3)) };
}

/** The baseline: devices sending frame-sized payloads to a bare echo responder on the same broker. */
async function echoLoops(port: number, count: number, size: number): Promise<{ loops: (() => Promise<void>)[]; close: () => void }> {
  const responder = await connectMqtt({ host: '127.0.0.1', port, clientId: 'bench-echo' });
  responder.on('message', (topic, message) => responder.publish(topic.replace(/\/up$/, '/down'), message, { qos: 1 }));
  await new Promise<void>((resolve) => responder.subscribe('echo/+/up', { qos: 1 }, () => resolve()));
  const clients: MqttClient[] = [];
  const loops = await Promise.all(Array.from({ length: count }, async (_, i) => {
    const client = await connectMqtt({ host: '127.0.0.1', port, clientId: `bench-echo-device-${i}` });
    clients.push(client);
    let waiting: (() => void) | undefined;
    client.on('message', () => waiting?.());
    await new Promise<void>((resolve) => client.subscribe(`echo/d${i}/down`, { qos: 1 }, () => resolve()));
    const body = Buffer.alloc(size, i & 0xff);
    return () => new Promise<void>((resolve) => {
      waiting = resolve;
      client.publish(`echo/d${i}/up`, body, { qos: 1 });
    });
  }));
  return { loops, close: () => [responder, ...clients].forEach((c) => c.end(true)) };
}

export async function benchDevices(options: { seconds: number; json: boolean; out: (text: string) => void; counts?: number[] }): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-bench-devices-'));
  const broker = await startBroker(dir);
  const pki = ensureDevPki(join(dir, 'kms'));
  const server = new DevKmipServer(pki);
  const port = await server.listen(0);
  const client = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }), version: { major: 1, minor: 2 } });
  const agent = await AgentCore.open({ data: join(dir, 'agent'), client });
  const registry = new DeviceRegistry(agent.store, agent.masterKey);
  const service = new DeviceService(agent, registry, agent.store, silentLogger);
  const transport = await MqttDeviceTransport.start({ host: '127.0.0.1', port: broker.port, clientId: 'bench-agent' }, (frame, id) => service.handle(frame, id));
  try {
    const uid = await client.create(ObjectType.SymmetricKey, [
      { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, CryptographicAlgorithm.AES) },
      { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
      { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt) },
      { name: 'Name', value: nameValue('bench-key') },
    ]);
    await client.activate(uid);
    await agent.getKey('bench', uid, 'process'); // cache it: the benchmark measures cache hits
    const request = encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Get, payload: payload.get(uid) }]));
    if (!options.json) options.out('devices: key fetch (cache hit) over Mosquitto, next to a bare MQTT echo on the same broker\n');
    let registered = 0;
    for (const count of options.counts ?? [1, 100, 1000]) {
      while (registered < count) await registry.add(`bench-${registered++}`, { keys: [{ uniqueIdentifier: uid }], limits: { requestsPerSecond: 1_000_000 } });
      const devices = await Promise.all(Array.from({ length: count }, async (_, i) => {
        const id = `bench-${i}`;
        const device = (await registry.get(id))!;
        const mqtt = await connectMqtt({ host: '127.0.0.1', port: broker.port, clientId: `${id}-${count}` });
        // fresh counters per round, above any used before
        const sim = await MqttDevice.attach(mqtt, new DeviceClient(id, device.key, device.suite, memoryCounters(BigInt(count) * 1_000_000_000n)));
        return { mqtt, sim };
      }));
      const sampleFrame = new DeviceClient('bench-0', new Uint8Array(32), 1, memoryCounters()).seal(request).frame.length;
      const ours = await drive(devices.map(({ sim }) => async () => {
        const response = await sim.request(request, { resendMs: 5000 });
        if (response.batchItems[0]?.resultStatus !== ResultStatus.Success) throw new Error('bench: a Get failed');
      }), options.seconds);
      devices.forEach(({ mqtt }) => mqtt.end(true));
      const echo = await echoLoops(broker.port, count, sampleFrame);
      const baseline = await drive(echo.loops, options.seconds);
      echo.close();
      const result = { bench: 'devices', devices: count, ...ours, echoRequestsPerSec: baseline.requestsPerSec, echoP50Ms: baseline.p50Ms, echoP99Ms: baseline.p99Ms };
      if (options.json) options.out(JSON.stringify(result) + '\n');
      else options.out(`  ${String(count).padStart(4)} devices: ${ours.requestsPerSec}/s p50 ${ours.p50Ms} ms p99 ${ours.p99Ms} ms  |  echo ${baseline.requestsPerSec}/s p50 ${baseline.p50Ms} ms p99 ${baseline.p99Ms} ms  (throughput ${(ours.requestsPerSec / baseline.requestsPerSec).toFixed(2)}×, p50 ${(ours.p50Ms / baseline.p50Ms).toFixed(2)}×)\n`);
    }
  } finally {
    await transport.close();
    await agent.close();
    await client.close();
    await server.close();
    broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
