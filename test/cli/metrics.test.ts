/**
 * `kmip-edge run --metrics`, every part a real process: the development server upstream, Mosquitto,
 * the agent, device-sim, and a real Prometheus scraping /metrics every second — the device request
 * counter read back through Prometheus's HTTP API. Also /healthz and /readyz (not ready once the
 * broker is gone), no key material or device key in the exposition, and a port in use.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { it } from 'node:test';
import { UsageLimitsUnit, Tag } from '../../src/kmip/tables.generated.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { freePort } from '../../src/bench/free-port.ts';
import { runCli } from '../helpers/cli.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, createActiveKey, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';
import { startPrometheus, type Prometheus } from '../helpers/prometheus.ts';

/** Polls `check` until it returns a value, for at most `seconds` (Prometheus scrapes every second). */
async function eventually<T>(what: string, seconds: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${seconds} s${last ? ` (${(last as Error).message})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

it('a real Prometheus scrapes kmip-edge run --metrics: device requests read back through its HTTP API; /healthz, /readyz; no key material', async () => {
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('metrics');
  let agent: ChildProcess | undefined;
  let prometheus: Prometheus | undefined;
  try {
    const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 1_000_000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]);
    const uid = await createActiveKey(kms, port, 'metrics-key', [{ name: 'Usage Limits', value: limits }]);
    const deviceKey = addDevice(data, 'meter-1', uid);
    const run = await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--metrics', '127.0.0.1:0']);
    agent = run.child;
    const metrics = run.ready.metrics as string;
    assert.match(metrics, /^127\.0\.0\.1:\d+$/, 'the ready line names the metrics address (loopback)');
    prometheus = await startPrometheus('kmip-edge', [metrics]);

    const sim = (...action: string[]) => runCli(['device-sim', '--id', 'meter-1', '--key', deviceKey, '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--state', join(work, 'meter.counter'), ...action]);
    const gets = sim('get', '--uid', uid, '--repeat', '3');
    assert.equal(gets.status, 0, gets.stderr);
    assert.equal(sim('allocate', '--uid', uid, '--count', '100').status, 0);
    assert.equal(sim('get', '--uid', 'not-allowed').status, 1);

    // Through Prometheus: the scrape succeeded and the counters are the agent's.
    const query = (expression: string) => prometheus!.query(expression);
    await eventually('the target is up', 60, async () => ((await query('up{job="kmip-edge"}'))[0]?.value === 1 ? true : undefined));
    const successGets = await eventually('3 successful Gets', 60, async () => {
      const [sample] = await query('kmip_edge_device_requests_total{operation="Get",result="Success"}');
      return sample?.value === 3 ? sample : undefined;
    });
    assert.equal(successGets.metric.instance, metrics);
    // The refused Get was the last request: once a scrape has it, it has all the others too.
    await eventually('the refused Get', 60, async () => ((await query('kmip_edge_device_requests_total{operation="Get",result="ItemNotFound"}'))[0]?.value === 1 ? true : undefined));
    assert.deepEqual((await query('kmip_edge_device_requests_total{operation="GetUsageAllocation",result="Success"}')).map((s) => s.value), [1]);
    assert.deepEqual((await query('kmip_edge_upstream_online')).map((s) => s.value), [1]);
    assert.deepEqual((await query('kmip_edge_mqtt_connected')).map((s) => s.value), [1]);
    const refills = await query('kmip_edge_refills_total{outcome="Success"}');
    assert.ok(refills.length === 1 && refills[0]!.value >= 1, 'the allocation came from at least one refill');
    const remaining = await query(`kmip_edge_allocation_remaining_units{key="${uid}"}`);
    const granted = (await query('kmip_edge_refill_units_total'))[0]!.value;
    assert.deepEqual(remaining.map((s) => s.value), [granted - 100], 'remaining = units refilled - units granted');
    assert.ok((await query('kmip_edge_upstream_request_duration_seconds_count{operation="Get"}')).length === 1, 'upstream latency histogram');
    assert.ok((await query('kmip_edge_key_cache_lookups_total{result="miss"}'))[0]!.value >= 1);

    // The exposition itself: no key material, no device key.
    const exposition = await (await fetch(`http://${metrics}/metrics`)).text();
    const material = (JSON.parse(runCli(['kmip', '--server', `127.0.0.1:${port}`, '--ca', join(kms, 'ca.pem'), '--cert', join(kms, 'client.pem'), '--key', join(kms, 'client.key'), 'get', '--uid', uid]).stdout) as { keyMaterial: string }).keyMaterial;
    assert.match(material, /^[0-9a-f]{64}$/);
    for (const secret of [material, deviceKey, Buffer.from(material, 'hex').toString('base64'), Buffer.from(deviceKey, 'hex').toString('base64')]) assert.ok(!exposition.toLowerCase().includes(secret.toLowerCase()), 'a key in /metrics');

    const healthz = await fetch(`http://${metrics}/healthz`);
    assert.deepEqual([healthz.status, await healthz.text()], [200, 'ok\n']);
    const ready = await fetch(`http://${metrics}/readyz`);
    assert.deepEqual([ready.status, await ready.text()], [200, 'ready\n']);
    assert.equal((await fetch(`http://${metrics}/nope`)).status, 404);
    assert.equal((await fetch(`http://${metrics}/metrics`, { method: 'POST' })).status, 405);

    // The broker goes away: not ready (devices cannot reach the agent), still healthy; Prometheus sees MQTT down.
    await broker.stop();
    const notReady = await eventually('/readyz 503', 30, async () => {
      const response = await fetch(`http://${metrics}/readyz`);
      return response.status === 503 ? response.text() : undefined;
    });
    assert.equal(notReady, 'not ready: not connected to the MQTT broker\n');
    assert.equal((await fetch(`http://${metrics}/healthz`)).status, 200);
    await eventually('kmip_edge_mqtt_connected 0 in Prometheus', 60, async () => ((await query('kmip_edge_mqtt_connected'))[0]?.value === 0 ? true : undefined));

    assert.equal(await terminate(agent), 0);
    agent = undefined;
  } finally {
    agent?.kill('SIGKILL');
    await prometheus?.stop();
    server.kill('SIGTERM');
    await broker.stop();
  }
});

it('--metrics on a port in use, or not an address: one line naming the problem, exit 2, no stack trace', async () => {
  const { kms, data, port, server } = await startKeyServer('metrics-port');
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', () => resolve()));
  const taken = (holder.address() as { port: number }).port;
  try {
    const brokerPort = await freePort();
    const run = runCli(['run', '--data', data, ...upstreamArgs(kms, port), '--embedded-broker', `127.0.0.1:${brokerPort}`, '--metrics', `127.0.0.1:${taken}`]);
    assert.equal(run.status, 2, run.stderr);
    const messages = run.stderr.trim().split('\n').filter((line) => !line.startsWith('{'));
    assert.deepEqual(messages, [`kmip-edge: --metrics 127.0.0.1:${taken}: the address is already in use (another process listens there); stop it or choose another port`]);
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(run.stdout, '', 'no ready line');

    const bad = runCli(['run', '--data', data, ...upstreamArgs(kms, port), '--embedded-broker', `127.0.0.1:${brokerPort}`, '--metrics', 'localhost:']);
    assert.equal(bad.status, 2);
    assert.deepEqual(bad.stderr.trim().split('\n').filter((line) => !line.startsWith('{')), ['kmip-edge: --metrics: got "localhost:"; expected HOST:PORT to listen on (port 0-65535, 0 = any free port), e.g. 127.0.0.1:9464']);
  } finally {
    holder.close();
    server.kill('SIGTERM');
  }
});
