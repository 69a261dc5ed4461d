/**
 * Issue #13 finding 6, every part a real process: a 200 MB publish to a device's up topic,
 * through a Mosquitto that lets it through (no size limit configured), reaches `kmip-edge run`.
 * The agent drops it unread — it logs `mqtt.packet_too_large` with the announced size — keeps
 * running, and serves the other devices and the one whose topic it was; its peak resident memory
 * (VmHWM, which no later garbage collection can lower) stays far below the payload's size.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { connect as connectMqtt } from 'mqtt';
import { runCli } from '../helpers/cli.ts';
import { spawnCli, stopCli, type CliProcess } from '../helpers/cli-process.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, createActiveKey, startKeyServer, upstreamArgs } from '../helpers/processes.ts';

const PAYLOAD_BYTES = 200 * 1024 * 1024;

/** Resident and peak resident memory of a process, in bytes (Linux /proc). */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)![1]) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

it('a 200 MB publish to a device topic does not end the agent, is not held in its memory, and other devices are still served', async () => {
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('mqtt-oversize');
  let agent: CliProcess | undefined;
  const flooder = connectMqtt(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'flooder', reconnectPeriod: 0 });
  try {
    const uid = await createActiveKey(kms, port, 'oversize-key');
    const victimKey = addDevice(data, 'victim', uid);
    const otherKey = addDevice(data, 'bystander', uid);
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const sim = (id: string, key: string) => runCli(['device-sim', '--id', id, '--key', key, '--mqtt', url, '--state', join(work, `${id}.counter`), '--timeout', '30', 'get', '--uid', uid]);
    agent = spawnCli(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', url]);
    assert.equal((await agent.firstLine()).mqttState, 'connected');
    assert.equal(sim('bystander', otherKey).status, 0, 'served before');
    const pid = agent.child.pid!;
    const before = memory(pid);

    if (!flooder.connected) await new Promise<void>((resolve, reject) => flooder.once('connect', () => resolve()).once('error', reject));
    await new Promise<void>((resolve, reject) => flooder.publish('kmip-edge/victim/up', Buffer.alloc(PAYLOAD_BYTES, 0x41), { qos: 1 }, (error) => (error ? reject(error) : resolve())));
    const dropped = await agent.waitForLog((line) => line.event === 'mqtt.packet_too_large', 'the oversized packet logged', 120_000);
    assert.equal(dropped.topic, 'kmip-edge/victim/up');
    assert.ok((dropped.bytes as number) > PAYLOAD_BYTES, `the announced size: ${String(dropped.bytes)}`);
    assert.equal(dropped.limit, 4096 + 1024);

    for (const [id, key] of [['bystander', otherKey], ['victim', victimKey]] as const) {
      const got = sim(id, key);
      assert.equal(got.status, 0, `${id} served after the flood: ${got.stdout} ${got.stderr}`);
    }
    assert.equal(agent.child.exitCode, null, 'the agent is still running');
    const after = memory(pid);
    const grew = after.peak - before.rss;
    assert.ok(grew < PAYLOAD_BYTES / 2, `the agent's peak memory grew by ${(grew / 1048576).toFixed(1)} MiB (rss ${(before.rss / 1048576).toFixed(1)} → ${(after.rss / 1048576).toFixed(1)} MiB, peak ${(after.peak / 1048576).toFixed(1)} MiB) for a ${PAYLOAD_BYTES / 1048576} MiB publish`);
    process.stderr.write(`# agent memory: rss before ${(before.rss / 1048576).toFixed(1)} MiB, peak before ${(before.peak / 1048576).toFixed(1)} MiB; after: rss ${(after.rss / 1048576).toFixed(1)} MiB, peak ${(after.peak / 1048576).toFixed(1)} MiB\n`);
  } finally {
    flooder.end(true);
    await stopCli(agent);
    server.kill('SIGTERM');
    await broker.stop();
  }
});
