/**
 * MQTT in the field, every part a real process (dev-server, Mosquitto, `kmip-edge run`,
 * `kmip-edge device-sim`): the broker killed and restarted on the same port (the agent logs the
 * disconnect and the reconnect, resubscribes, serves again); a device's frame published while the
 * agent was away answered once it is back (its session is kept by the broker); the broker down
 * when the agent starts (it keeps trying and serves once it is up); device-sim's --timeout with a
 * hint, its --suite checked, its key from a file or standard input.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { connect as connectMqtt } from 'mqtt';
import { freePort } from '../../src/bench/free-port.ts';
import { runCli } from '../helpers/cli.ts';
import { spawnCli, stopCli, type CliProcess } from '../helpers/cli-process.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, adminClient, createActiveKey, createMacKey, startKeyServer, upstreamArgs } from '../helpers/processes.ts';

const WARN = 40;
const INFO = 30;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const results = (stdout: string) => stdout.trim().split('\n').map((line) => JSON.parse(line) as { ok: boolean });

it('Mosquitto killed and restarted on the same port: the agent logs the disconnect and the reconnect, and serves devices again', async () => {
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('mqtt-restart');
  let agent: CliProcess | undefined;
  try {
    const uid = await createActiveKey(kms, port, 'restart-key');
    const key = addDevice(data, 'restart-dev', uid);
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const sim = () => runCli(['device-sim', '--id', 'restart-dev', '--key', key, '--mqtt', url, '--state', join(work, 'dev.counter'), '--timeout', '30', 'get', '--uid', uid]);
    agent = spawnCli(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', url]);
    const ready = await agent.firstLine();
    assert.equal(ready.mqttState, 'connected');
    const before = sim();
    assert.equal(before.status, 0, `${before.stdout} ${before.stderr}`);

    await broker.kill();
    const down = await agent.waitForLog((line) => line.event === 'mqtt_disconnected', 'the disconnect logged');
    assert.equal(down.level, WARN);
    assert.equal(typeof down.reason, 'string');
    await sleep(1500); // down for more than a second: the agent's reconnects meet a closed port
    const mark = agent.logs.length;
    await broker.start();
    const up = await agent.waitForLog((line) => line.event === 'mqtt_connected', 'the reconnect logged', 60_000, mark);
    assert.equal(up.level, INFO);
    assert.equal(up.broker, url);

    const after = sim();
    assert.equal(after.status, 0, `served again after the restart: ${after.stdout} ${after.stderr}`);
    assert.deepEqual(results(after.stdout).map((r) => r.ok), [true]);
    assert.equal(agent.child.exitCode, null, 'the agent is still running');
  } finally {
    await stopCli(agent);
    server.kill('SIGTERM');
    await broker.stop();
  }
});

it('a QoS 1 frame a device published while the agent was away is answered once the agent is back (the broker kept its session)', async () => {
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('mqtt-away');
  let agent: CliProcess | undefined;
  let device: CliProcess | undefined;
  const watcher = connectMqtt(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'test-watcher', reconnectPeriod: 0 });
  try {
    const uid = await createActiveKey(kms, port, 'away-key');
    const key = addDevice(data, 'away-dev', uid);
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const runArgs = ['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', url];
    agent = spawnCli(runArgs);
    assert.equal((await agent.firstLine()).mqttState, 'connected');
    assert.equal(await stopCli(agent), 0, 'the agent stops (an upgrade, a restart)');
    agent = undefined;

    // The device sends one frame and does not resend it within its timeout: only the broker's
    // queue for the agent's session can bring it to the agent.
    await new Promise<void>((resolve, reject) => watcher.subscribe('kmip-edge/away-dev/up', { qos: 1 }, (error) => (error ? reject(error) : resolve())));
    const seen = new Promise<void>((resolve) => watcher.once('message', () => resolve()));
    device = spawnCli(['device-sim', '--id', 'away-dev', '--key', key, '--mqtt', url, '--state', join(work, 'dev.counter'), '--resend-ms', '600000', '--timeout', '60', 'get', '--uid', uid]);
    await seen; // the frame is at the broker, the agent is not running
    agent = spawnCli(runArgs);
    await agent.firstLine();
    assert.equal(await device.closed, 0, `answered: ${JSON.stringify(device.out)} ${device.stderr}`);
    assert.deepEqual(device.out.map((line) => line.ok), [true]);
  } finally {
    watcher.end(true);
    await stopCli(device);
    await stopCli(agent);
    server.kill('SIGTERM');
    await broker.stop();
  }
});

it('the broker is down when the agent starts: ready says "connecting", the agent keeps trying (logging why) and serves once the broker is up', async () => {
  const brokerPort = await freePort();
  const { work, kms, data, port, server } = await startKeyServer('mqtt-late');
  let agent: CliProcess | undefined;
  let broker: Awaited<ReturnType<typeof startMosquitto>> | undefined;
  try {
    const uid = await createActiveKey(kms, port, 'late-key');
    const key = addDevice(data, 'late-dev', uid);
    const url = `mqtt://127.0.0.1:${brokerPort}`;
    agent = spawnCli(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', url]);
    const ready = await agent.firstLine();
    assert.equal(ready.ready, true);
    assert.equal(ready.mqttState, 'connecting');
    const failed = await agent.waitForLog((line) => line.event === 'mqtt_connect_failed', 'a failed attempt logged');
    assert.equal(failed.level, WARN);
    assert.match(String(failed.reason), /ECONNREFUSED/);
    assert.doesNotMatch(agent.stderr, /\n\s+at /, 'no stack trace');

    broker = await startMosquitto({ port: brokerPort });
    await agent.waitForLog((line) => line.event === 'mqtt_connected', 'the connection logged');
    const got = runCli(['device-sim', '--id', 'late-dev', '--key', key, '--mqtt', url, '--state', join(work, 'dev.counter'), '--timeout', '30', 'get', '--uid', uid]);
    assert.equal(got.status, 0, `${got.stdout} ${got.stderr}`);
    assert.equal(agent.child.exitCode, null);
  } finally {
    await stopCli(agent);
    server.kill('SIGTERM');
    await broker?.stop();
  }
});

it('device-sim: --timeout ends an unanswered request with exit 1 and a hint; an unknown --suite is exit 2; the key may come from a file or standard input', async () => {
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('mqtt-sim');
  let agent: CliProcess | undefined;
  try {
    const uid = await createActiveKey(kms, port, 'sim-key');
    const key = addDevice(data, 'sim-dev', uid);
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const sim = (args: string[], input?: string) => runCli(['device-sim', '--id', 'sim-dev', '--mqtt', url, '--state', join(work, 'dev.counter'), ...args], input);
    const hint = /kmip-edge: no answer from the agent within 2 s: .*key.*suite.*id.*counter.*agent/;

    // No agent on the broker: nobody answers.
    const alone = sim(['--key', key, '--timeout', '2', 'get', '--uid', uid]);
    assert.equal(alone.status, 1, alone.stderr);
    assert.match(alone.stderr, hint);
    assert.doesNotMatch(alone.stderr, /\n\s+at /);

    agent = spawnCli(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', url]);
    await agent.firstLine();
    // The agent drops frames sealed with another key: the device hears nothing.
    const wrongKey = sim(['--key', 'ab'.repeat(32), '--timeout', '2', 'get', '--uid', uid]);
    assert.equal(wrongKey.status, 1, wrongKey.stderr);
    assert.match(wrongKey.stderr, hint);
    const wrongSuite = sim(['--key', key, '--suite', 'chacha20-poly1305', '--timeout', '2', 'get', '--uid', uid]);
    assert.equal(wrongSuite.status, 1, wrongSuite.stderr);

    const badSuite = sim(['--key', key, '--suite', 'rot13', 'get', '--uid', uid]);
    assert.deepEqual([badSuite.status, badSuite.stderr.trim()], [2, 'kmip-edge: --suite is aes-256-gcm or chacha20-poly1305, not "rot13"']);
    for (const timeout of ['0', 'soon', '-1']) {
      const bad = sim(['--key', key, '--timeout', timeout, 'get', '--uid', uid]);
      assert.equal(bad.status, 2, `--timeout ${timeout}: ${bad.stderr}`);
    }

    // The key from a file, and from standard input: not on the command line, where `ps` shows it.
    const keyFile = join(work, 'device.key');
    writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
    const fromFile = sim(['--key-file', keyFile, 'get', '--uid', uid]);
    assert.equal(fromFile.status, 0, fromFile.stderr);
    assert.deepEqual(results(fromFile.stdout).map((r) => r.ok), [true]);
    const fromStdin = sim(['--key-file', '-', 'get', '--uid', uid], `${key}\n`);
    assert.equal(fromStdin.status, 0, fromStdin.stderr);
    const both = sim(['--key', key, '--key-file', keyFile, 'get', '--uid', uid]);
    assert.deepEqual([both.status, both.stderr.trim()], [2, 'kmip-edge: device-sim takes --key HEX or --key-file F, not both']);
    const help = runCli(['device-sim', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout + help.stderr, /--key-file F/);
    assert.match(help.stdout + help.stderr, /--mac-key-file F/);
    assert.match(help.stdout + help.stderr, /--timeout SECONDS/);
  } finally {
    await stopCli(agent);
    server.kill('SIGTERM');
    await broker.stop();
  }
});


it('device-sim get-verified with the device key on standard input and the MAC key in a file: nothing secret on its command line', async () => {
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('mqtt-secrets');
  const admin = adminClient(kms, port);
  let agent: CliProcess | undefined;
  try {
    const { uid: macUid, material: macKey } = await createMacKey(admin);
    const uid = await createActiveKey(kms, port, 'secret-verified');
    const key = addDevice(data, 'secret-dev', uid, macUid);
    const url = `mqtt://127.0.0.1:${broker.port}`;
    agent = spawnCli(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', url]);
    await agent.firstLine();
    const macKeyFile = join(work, 'mac.key');
    writeFileSync(macKeyFile, `${macKey}\n`, { mode: 0o600 });
    const args = ['device-sim', '--id', 'secret-dev', '--key-file', '-', '--mqtt', url, '--state', join(work, 'dev.counter'), 'get-verified', '--uid', uid, '--mac-uid', macUid, '--mac-key-file', macKeyFile];
    const verified = runCli(args, `${key}\n`);
    assert.equal(verified.status, 0, verified.stdout + verified.stderr);
    assert.deepEqual(results(verified.stdout).map((r) => (r as { verified?: boolean }).verified), [true]);
    assert.ok(!args.some((arg) => arg.includes(key) || arg.includes(macKey)));
    const bothStdin = runCli(['device-sim', '--id', 'secret-dev', '--key-file', '-', '--mqtt', url, 'get-verified', '--uid', uid, '--mac-uid', macUid, '--mac-key-file', '-'], `${key}\n`);
    assert.deepEqual([bothStdin.status, bothStdin.stderr], [2, 'kmip-edge: --key-file and --mac-key-file cannot both read standard input\n']);
    const missing = runCli(['device-sim', '--id', 'secret-dev', '--key-file', join(work, 'nope'), '--mqtt', url, 'get', '--uid', uid]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /^kmip-edge: --key-file: cannot open .*nope: ENOENT\n$/);
  } finally {
    await admin.close();
    await stopCli(agent);
    server.kill('SIGTERM');
    await broker.stop();
  }
});
