/**
 * Issue #13 finding 7, with real processes and a real blackhole: `kmip-edge run` talks to the
 * development server through a TCP relay in this test, which is then switched to a blackhole —
 * it accepts connections and never answers. A device on a real Mosquitto broker then asks for a
 * key the agent does not hold (its fill hangs upstream) and, while that is stuck, for a key the
 * cache holds: the cached Get is answered first (it does not wait behind the upstream call); the
 * stuck Get is answered "not now" (UPSTREAM_TIMEOUT) at the agent's deadline, once, although the
 * device resent it every 100 ms meanwhile (the resends collapse onto the request in flight);
 * when the upstream answers again the key is served.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { it } from 'node:test';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import { parseFrameHeader, Suite } from '../../src/devices/frame.ts';
import { MqttDevice } from '../../src/devices/mqtt-device.ts';
import { connectMqtt, frameOf } from '../../src/devices/mqtt-transport.ts';
import { payload } from '../../src/kmip/payloads.ts';
import { Operation, ResultStatus } from '../../src/kmip/tables.generated.ts';
import { fromHex } from '../../src/ttlv/hex.ts';
import { deviceRequest } from '../helpers/gateway.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, createActiveKey, startKeyServer, startProcess, terminate } from '../helpers/processes.ts';
import { until } from '../helpers/until.ts';

/** A TCP relay to `port` that can turn into a blackhole: new connections accepted, never answered. */
async function startRelay(port: number) {
  const open = new Set<Socket>();
  let blackhole = false;
  let blackholed = 0;
  const server = createServer((socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
    if (blackhole) {
      blackholed++;
      socket.resume(); // read and drop: never a byte back
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port });
    open.add(upstream);
    upstream.on('close', () => open.delete(upstream));
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    get blackholed() {
      return blackholed;
    },
    /** Cuts what is open and answers nothing from now on (or relays again). */
    setBlackhole(on: boolean) {
      blackhole = on;
      if (on) for (const socket of open) socket.destroy();
    },
    close: () => new Promise<void>((resolve) => {
      for (const socket of open) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

it('a blackholed upstream: a cached Get is not held behind a stuck one; the stuck one is answered once, at the deadline; served again when the upstream is back', async () => {
  const broker = await startMosquitto();
  const { kms, data, port, server } = await startKeyServer('blackhole');
  const relay = await startRelay(port);
  let agent: ChildProcess | undefined;
  const mqtt = [] as Awaited<ReturnType<typeof connectMqtt>>[];
  try {
    const cached = await createActiveKey(kms, port, 'cached-key');
    const uncached = await createActiveKey(kms, port, 'uncached-key');
    const key = addDevice(data, 'stalled-dev', cached, uncached);
    const run = await startProcess(['run', '--data', data, '--upstream', `127.0.0.1:${relay.port}`, '--upstream-ca', join(kms, 'ca.pem'),
      '--upstream-cert', join(kms, 'client.pem'), '--upstream-key', join(kms, 'client.key'), '--mqtt', `mqtt://127.0.0.1:${broker.port}`]);
    agent = run.child;

    const link = await connectMqtt({ host: '127.0.0.1', port: broker.port });
    mqtt.push(link);
    const counters = memoryCounters();
    const device = new DeviceClient('stalled-dev', fromHex(key), Suite.AES_256_GCM, counters);
    const requester = await MqttDevice.attach(link, device);
    // Every reply the agent sends the device, by the request it answers.
    const replies = new Map<bigint, number>();
    link.on('message', (_topic, message) => {
      const { header } = parseFrameHeader(frameOf(message));
      if (header.replyTo !== undefined) replies.set(header.replyTo, (replies.get(header.replyTo) ?? 0) + 1);
    });
    const get = (uid: string) => requester.request(deviceRequest(Operation.Get, payload.get(uid)), { resendMs: 100, deadlineMs: 120_000 });

    assert.equal((await get(cached)).batchItems[0]!.resultStatus, ResultStatus.Success, 'cached while the upstream answers');
    relay.setBlackhole(true);

    const order: string[] = [];
    const stuckCounter = counters.load() + 1n;
    const stuck = get(uncached).then((response) => (order.push('uncached'), response));
    await until(() => relay.blackholed > 0, 'the agent to call the blackholed upstream', 20_000);
    const fromCache = await get(cached).then((response) => (order.push('cached'), response));
    assert.equal(fromCache.batchItems[0]!.resultStatus, ResultStatus.Success);
    const refused = (await stuck).batchItems[0]!;
    assert.deepEqual(order, ['cached', 'uncached'], 'the cached Get did not wait behind the upstream call');
    assert.equal(refused.resultStatus, ResultStatus.OperationFailed);
    assert.equal(refused.resultMessage, 'UPSTREAM_TIMEOUT');
    await new Promise((resolve) => setTimeout(resolve, 300)); // any late duplicate reply would arrive by now
    assert.equal(replies.get(stuckCounter), 1, 'one reply for the stuck request, although the device resent it every 100 ms');

    relay.setBlackhole(false);
    let served = false;
    await until(async () => (served = (await get(uncached)).batchItems[0]!.resultStatus === ResultStatus.Success), 'the key to be served once the upstream answers again', 60_000);
    assert.ok(served);
    assert.equal(await terminate(agent), 0);
    agent = undefined;
  } finally {
    for (const client of mqtt) client.end(true);
    agent?.kill('SIGKILL');
    await relay.close();
    server.kill('SIGTERM');
    await broker.stop();
  }
});
