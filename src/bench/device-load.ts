/**
 * The load generator of `bench devices`, run in its own process (as devices are not in the
 * agent's process): N simulated devices — each one request at a time, like device-sim — or N
 * bare echo clients sending payloads of the same size, for a fixed time. Prints one JSON line:
 * {"requestsPerSec","p50Ms","p99Ms"}. Started by devices-bench.ts as `kmip-edge bench
 * devices-load` with its configuration on stdin.
 */
import type { MqttClient } from 'mqtt';
import { DeviceClient, memoryCounters } from '../devices/device-client.ts';
import type { Suite } from '../devices/frame.ts';
import { MqttDevice } from '../devices/mqtt-device.ts';
import { connectMqtt } from '../devices/mqtt-transport.ts';
import { ResultStatus } from '../kmip/tables.generated.ts';
import { fromHex } from '../ttlv/hex.ts';

export interface LoadConfig {
  port: number;
  seconds: number;
  /** Simulated devices (mode "devices") or the number of echo clients and their payload size (mode "echo"). */
  mode: 'devices' | 'echo';
  devices?: { id: string; key: string; suite: Suite; counterBase: string }[];
  request?: string;
  echo?: { count: number; size: number };
}

export interface Measurement {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Every request made, warm-up included (to share out the responder's CPU time). */
  requests: number;
  /** The load generator's own CPU time per request (it shares the machine with the agent and the broker). */
  loadCpuUsPerRequest: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs the loops, each one request at a time, for `seconds`. */
async function drive(loops: (() => Promise<void>)[], seconds: number): Promise<Omit<Measurement, 'loadCpuUsPerRequest'>> {
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
  return { requestsPerSec: Math.round(latencies.length / elapsed), p50Ms: Number(percentile(latencies, 50).toFixed(3)), p99Ms: Number(percentile(latencies, 99).toFixed(3)), requests: latencies.length };
}

async function deviceLoops(config: LoadConfig, clients: MqttClient[]): Promise<(() => Promise<void>)[]> {
  const request = fromHex(config.request!);
  return Promise.all(config.devices!.map(async (d) => {
    const mqtt = await connectMqtt({ host: '127.0.0.1', port: config.port, clientId: `load-${d.id}-${process.pid}` });
    clients.push(mqtt);
    const device = await MqttDevice.attach(mqtt, new DeviceClient(d.id, fromHex(d.key), d.suite, memoryCounters(BigInt(d.counterBase))));
    return async () => {
      const response = await device.request(request, { resendMs: 5000 });
      if (response.batchItems[0]?.resultStatus !== ResultStatus.Success) throw new Error('bench: a Get failed');
    };
  }));
}

async function echoLoops(config: LoadConfig, clients: MqttClient[]): Promise<(() => Promise<void>)[]> {
  const { count, size } = config.echo!;
  return Promise.all(Array.from({ length: count }, async (_, i) => {
    const client = await connectMqtt({ host: '127.0.0.1', port: config.port, clientId: `load-echo-${i}-${process.pid}` });
    clients.push(client);
    let waiting: (() => void) | undefined;
    client.on('message', () => waiting?.());
    await new Promise<void>((resolve) => client.subscribe(`echo/d${i}/down`, { qos: 1 }, () => resolve()));
    const body = Buffer.alloc(size, i & 0xff);
    const upTopic = `echo/d${i}/up`;
    return () => new Promise<void>((resolve) => {
      waiting = resolve;
      client.publish(upTopic, body, { qos: 1 });
    });
  }));
}

export async function runDeviceLoad(config: LoadConfig): Promise<Measurement> {
  const clients: MqttClient[] = [];
  try {
    const loops = config.mode === 'devices' ? await deviceLoops(config, clients) : await echoLoops(config, clients);
    const before = process.cpuUsage();
    const warmUp = await drive(loops, Math.min(1, config.seconds / 2)); // not counted: both sides compile their hot paths
    const measured = await drive(loops, config.seconds);
    const cpu = process.cpuUsage(before);
    const requests = warmUp.requests + measured.requests;
    return { ...measured, requests, loadCpuUsPerRequest: Math.round((cpu.user + cpu.system) / Math.max(1, requests)) };
  } finally {
    clients.forEach((c) => c.end(true));
  }
}
