/**
 * The shipped Mosquitto configuration (deploy/mosquitto.conf + deploy/mosquitto.acl, ports and
 * paths substituted, nothing else changed; passwords by mosquitto_passwd), every part a real
 * process: `kmip-edge run` logs in with --mqtt-username and --mqtt-password-file and serves a
 * device that logs in with its own; a wrong password is refused (with the reason, exit 1); a
 * device can neither publish on another device's up topic nor receive its down topic; a
 * packet over the configured size limit is refused by the broker.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { connect as connectMqtt, type MqttClient } from 'mqtt';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import { parseFrameHeader, Suite } from '../../src/devices/frame.ts';
import { payload } from '../../src/kmip/payloads.ts';
import { Operation } from '../../src/kmip/tables.generated.ts';
import { fromHex } from '../../src/ttlv/hex.ts';
import { runCli } from '../helpers/cli.ts';
import { spawnCli, stopCli, type CliProcess } from '../helpers/cli-process.ts';
import { deviceRequest } from '../helpers/gateway.ts';
import { until } from '../helpers/until.ts';
import { startDeployedMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, createActiveKey, startKeyServer, upstreamArgs } from '../helpers/processes.ts';

const PASSWORDS = { 'kmip-edge-agent': 'agent-secret-1', 'dev-a': 'password-of-a', 'dev-b': 'password-of-b' };

/** An MQTT 5 client logged in as `user` (MQTT 5: the broker says why it refuses a publish or subscription). */
async function login(port: number, user: keyof typeof PASSWORDS, clientId: string): Promise<MqttClient> {
  const client = connectMqtt(`mqtt://127.0.0.1:${port}`, { clientId, username: user, password: PASSWORDS[user], protocolVersion: 5, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => client.once('connect', () => resolve()).once('error', reject));
  return client;
}

function subscribe(client: MqttClient, topic: string): Promise<number> {
  return new Promise((resolve, reject) => client.subscribe(topic, { qos: 1 }, (error, granted) => (error && !granted ? reject(error) : resolve(granted![0]!.qos))));
}

it('the shipped mosquitto.conf and ACL: the agent and devices log in with passwords, devices are served, a device cannot use another device\'s topics', async () => {
  const broker = await startDeployedMosquitto(PASSWORDS);
  const { work, kms, data, port, server } = await startKeyServer('mqtt-deploy');
  let agent: CliProcess | undefined;
  const clients: MqttClient[] = [];
  try {
    assert.match(broker.used, /^allow_anonymous false$/m);
    assert.match(broker.used, /^max_packet_size 5120$/m);
    const uid = await createActiveKey(kms, port, 'deploy-key');
    const keyA = addDevice(data, 'dev-a', uid);
    const keyB = addDevice(data, 'dev-b', uid);
    const secret = (name: string, text: string) => {
      const path = join(work, name);
      writeFileSync(path, `${text}\n`, { mode: 0o600 });
      return path;
    };
    const url = `mqtt://127.0.0.1:${broker.port}`;

    // Anonymous: refused by the broker, and the agent says so (and keeps trying).
    const anonymous = runCli(['device-sim', '--id', 'dev-a', '--key', keyA, '--mqtt', url, '--state', join(work, 'a.counter'), '--timeout', '3', 'get', '--uid', uid]);
    assert.equal(anonymous.status, 1);
    assert.match(anonymous.stderr, /^kmip-edge: cannot connect to the MQTT broker mqtt:\/\/127\.0\.0\.1:\d+ within 3 s: Connection refused: Not authorized\n$/);

    agent = spawnCli(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', url, '--mqtt-username', 'kmip-edge-agent', '--mqtt-password-file', secret('agent.password', PASSWORDS['kmip-edge-agent'])]);
    assert.equal((await agent.firstLine()).mqttState, 'connected');
    assert.doesNotMatch(agent.stderr, new RegExp(PASSWORDS['kmip-edge-agent']), 'the password is not logged');

    const sim = (id: 'dev-a' | 'dev-b', key: string, password: string) => runCli(['device-sim', '--id', id, '--key', key, '--mqtt', url, '--mqtt-username', id, '--mqtt-password-file', secret(`${id}.pw`, password), '--state', join(work, `${id}.counter`), '--timeout', '10', 'get', '--uid', uid]);
    const served = sim('dev-a', keyA, PASSWORDS['dev-a']);
    assert.equal(served.status, 0, `${served.stdout} ${served.stderr}`);
    const wrongPassword = sim('dev-a', keyA, 'not-the-password');
    assert.equal(wrongPassword.status, 1);
    assert.match(wrongPassword.stderr, /Not authorized/);

    // dev-a publishes a frame sealed for dev-b (as a compromised device would) on dev-b's up topic.
    const a = await login(broker.port, 'dev-a', 'intruder-a');
    const b = await login(broker.port, 'dev-b', 'dev-b-watch');
    clients.push(a, b);
    assert.equal(await subscribe(b, 'kmip-edge/dev-b/down'), 1, 'dev-b may read its own down topic');
    const seenByB: Buffer[] = [];
    b.on('message', (_topic, message) => seenByB.push(message));
    const forged = new DeviceClient('dev-b', fromHex(keyB), Suite.AES_256_GCM, memoryCounters(999n)).seal(deviceRequest(Operation.Get, payload.get(uid))).frame;
    const refusal = await new Promise<Error | undefined>((resolve) => a.publish('kmip-edge/dev-b/up', Buffer.from(forged), { qos: 1 }, (error) => resolve(error ?? undefined)));
    assert.match(String(refusal), /Not authorized/, 'the broker refuses dev-a\'s publish on dev-b\'s topic');

    // dev-a subscribes to dev-b's down topic, and to everything. Mosquitto 2.0 checks its acl_file
    // when it delivers a message, not at SUBSCRIBE: the subscriptions are acknowledged (or refused,
    // 0x87, by a broker that checks them) but must never deliver dev-b's traffic.
    for (const filter of ['kmip-edge/dev-b/down', 'kmip-edge/#', '#']) assert.ok([1, 0x87].includes(await subscribe(a, filter)), filter);
    const seenByA: string[] = [];
    a.on('message', (topic) => seenByA.push(topic));

    // Control: the same frame from dev-b on its own topic is answered (so the forged copy was a
    // valid request), then a later one. Had the forged copy reached the agent, the first frame
    // would have been answered twice (the second time from the agent's kept reply) before the
    // agent even received the later frame.
    const deviceB = new DeviceClient('dev-b', fromHex(keyB), Suite.AES_256_GCM, memoryCounters(1000n));
    const answered = (counter: bigint) => seenByB.some((frame) => parseFrameHeader(new Uint8Array(frame)).header.replyTo === counter);
    const publishAsB = (frame: Uint8Array) => new Promise<void>((resolve, reject) => b.publish('kmip-edge/dev-b/up', Buffer.from(frame), { qos: 1 }, (error) => (error ? reject(error) : resolve())));
    await publishAsB(forged);
    await until(() => answered(1000n), 'the answer to dev-b\'s own frame', 10_000);
    await publishAsB(deviceB.seal(deviceRequest(Operation.Get, payload.get(uid))).frame);
    await until(() => answered(1001n), 'the answer to dev-b\'s next frame', 10_000);
    assert.deepEqual(seenByB.map((frame) => parseFrameHeader(new Uint8Array(frame)).header.replyTo), [1000n, 1001n], 'one answer each: the forged frame never reached the agent');
    // A SUBACK comes after everything the broker routed to dev-a before it: nothing of dev-b's.
    assert.equal(await subscribe(a, 'kmip-edge/dev-a/down'), 1);
    assert.deepEqual(seenByA, [], 'dev-a saw none of dev-b\'s traffic');

    // The broker's own size limit (max_packet_size): the sender of a larger packet is disconnected.
    const flooder = await login(broker.port, 'dev-a', 'flooder-a');
    clients.push(flooder);
    const closed = new Promise<void>((resolve) => flooder.once('close', () => resolve()));
    flooder.publish('kmip-edge/dev-a/up', Buffer.alloc(64 * 1024, 1), { qos: 1 });
    await closed;
    assert.equal(agent.logs.some((line) => line.event === 'mqtt.packet_too_large'), false, 'it never reached the agent');

    writeFileSync(join(work, 'dev-b.counter'), '2000 0\n'); // past the frames sent as dev-b above
    const again = sim('dev-b', keyB, PASSWORDS['dev-b']);
    assert.equal(again.status, 0, `${again.stdout} ${again.stderr}`);
  } finally {
    for (const client of clients) client.end(true);
    await stopCli(agent);
    server.kill('SIGTERM');
    await broker.stop();
  }
});
