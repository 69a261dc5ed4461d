/**
 * The C examples in a hostile field, every part a real process: operator mistakes (exit 2, one
 * line), a corrupt counter state (refuses to send, says why), the agent down when the example
 * sends (the same frame resent until it is back; one grant), Mosquitto restarted mid-run (the
 * example reconnects by itself and finishes, each grant once), noise on the serial line (the
 * SLIP decoder resynchronizes).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, it } from 'node:test';
import { freePort } from '../../src/bench/free-port.ts';
import { SerialLine } from '../../src/devices/serial-transport.ts';
import { Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { runCli } from '../helpers/cli.ts';
import { addDevice, createActiveKey, exited, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';
import { startPtyPair } from '../helpers/pty-pair.ts';
import { until } from '../helpers/until.ts';
import { device, mqttTap, serialTap, startDevice, type DeviceProgram } from './device-scenario.ts';
import { buildFirmware, type FirmwareBuild } from './firmware-build.ts';

let build: FirmwareBuild;
let serial: DeviceProgram;
let mqtt: DeviceProgram;
before(async () => {
  build = await buildFirmware('field', { targets: ['posix-serial-device', 'posix-mqtt-device'] });
  serial = { command: build.example('posix-serial-device'), args: [] };
  mqtt = { command: build.example('posix-mqtt-device'), args: [] };
});

const KEY = '11'.repeat(32);
/** The Usage Limits attribute Get Usage Allocation draws from (bytes). */
const usageLimits = (total: bigint) => ({ name: 'Usage Limits', value: structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, total), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]) });

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** A Mosquitto we can stop and start again on the same port (test/helpers/mosquitto.ts picks a new one each time). */
async function mosquittoOn(port: number): Promise<{ stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-fb-mosquitto-'));
  writeFileSync(join(dir, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nlog_dest stderr\nlog_type error\n`);
  const child: ChildProcess = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await until(async () => {
    if (child.exitCode !== null) throw new Error(`mosquitto exited: ${stderr}`);
    return listening(port);
  }, `mosquitto listening on ${port}`, 10_000);
  return { stop: async () => void (child.exitCode === null && (child.kill('SIGKILL'), await exited(child))) };
}

it('operator mistakes: exit 2 and one line naming the problem, nothing on stdout', async () => {
  const state = join(mkdtempSync(join(tmpdir(), 'kmip-edge-fb-usage-')), 'state');
  const cases: [DeviceProgram, string[], RegExp][] = [
    [serial, ['--key', KEY, '--serial', '/dev/null', '--state', state, 'get', '--uid', 'u'], /needs --id/],
    [serial, ['--id', 'd', '--key', 'abc', '--serial', '/dev/null', '--state', state, 'get', '--uid', 'u'], /--key is 64 hex digits/],
    [serial, ['--id', 'bad id', '--key', KEY, '--serial', '/dev/null', '--state', state, 'get', '--uid', 'u'], /--id is 1-64 characters/],
    [serial, ['--id', 'd', '--key', KEY, '--serial', '/dev/null', '--state', state], /needs an ACTION/],
    [serial, ['--id', 'd', '--key', KEY, '--serial', '/dev/null', '--state', state, 'allocate', '--uid', 'u', '--count', '0'], /--count N >= 1/],
    [serial, ['--id', 'd', '--key', KEY, '--serial', '/dev/null', '--state', state, 'get'], /get needs --uid/],
    [serial, ['--id', 'd', '--key', KEY, '--serial', '/dev/null', '--state', state, 'get', '--uid', 'u', '--bogus', '1'], /unknown option --bogus/],
    [serial, ['--id', 'd', '--key', KEY, '--serial', '/dev/null', 'get', '--uid', 'u'], /needs --state FILE/],
    [mqtt, ['--id', 'd', '--key', KEY, '--mqtt', 'http://x', '--state', state, 'get', '--uid', 'u'], /--mqtt takes mqtt:\/\/HOST/],
    [mqtt, ['--id', 'd', '--key', KEY, '--state', state, 'get', '--uid', 'u'], /needs --mqtt/],
  ];
  for (const [program, args, message] of cases) {
    const result = await device(program, args, 10_000);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.deepEqual(result.lines, []);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0]!, message);
  }
  // A serial line that is not a terminal: exit 1, said so.
  const notTty = await device(serial, ['--id', 'd', '--key', KEY, '--serial', '/dev/null', '--state', state, 'get', '--uid', 'u'], 10_000);
  assert.equal(notTty.status, 1);
  assert.match(notTty.stderr, /\/dev\/null is not a serial line/);
});

it('a corrupt or truncated counter state: the example refuses to send and says why', async () => {
  const pty = await startPtyPair();
  const heard: Uint8Array[] = [];
  const line = await SerialLine.open(pty.agentEnd, (frame) => heard.push(frame));
  try {
    const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-fb-state-'));
    for (const [name, bytes] of [['garbage', Buffer.alloc(24, 0x5a)], ['truncated', Buffer.from('FBC1\0\0')]] as const) {
      const state = join(dir, name);
      writeFileSync(state, bytes);
      const result = await device(serial, ['--id', 'd', '--key', KEY, '--serial', pty.deviceEnd, '--state', state, '--timeout', '2', 'get', '--uid', 'u'], 10_000);
      assert.equal(result.status, 1, result.stderr);
      assert.match(result.stderr, new RegExp(`cannot load the counter state from ${state}: FB_ERR_STORAGE`));
      assert.deepEqual(result.lines, []);
    }
    // Nothing was sent: a line it could not have numbered stays silent. (The line is read for a
    // moment after the example exited, so that bytes still in the pty would have arrived.)
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(heard.length, 0);
  } finally {
    await line.close();
    pty.stop();
  }
});

it('the agent is down when the example sends: the same frame is resent until the agent is back, and granted once', async () => {
  const brokerPort = await freePort();
  const broker = await mosquittoOn(brokerPort);
  const { work, kms, data, port, server } = await startKeyServer('fb-resend');
  const tap = await mqttTap(brokerPort, 'resend-dev');
  let agent: ChildProcess | undefined;
  try {
    const uid = await createActiveKey(kms, port, 'fb-resend-key', [usageLimits(1_000_000n)]);
    const key = addDevice(data, 'resend-dev', uid);
    const example = startDevice(mqtt, ['--id', 'resend-dev', '--key', key, '--mqtt', `mqtt://127.0.0.1:${brokerPort}`, '--state', join(work, 'state'), '--resend-ms', '200', '--timeout', '60', 'allocate', '--uid', uid, '--count', '7']);
    await until(() => tap.up.length >= 3 || example.child.exitCode !== null, 'three sends of the request while no agent listens', 30_000);
    agent = (await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${brokerPort}`])).child;
    const end = await example.done;
    assert.equal(end.status, 0, example.stderr());
    assert.deepEqual(example.lines.map((l) => [l.op, l.ok, l.count]), [['allocate', true, 7]]);
    assert.equal(new Set(tap.up.map((f) => toHex(f.frame))).size, 1, 'every send was the same frame (same counter)');
    assert.ok(tap.up.length >= 3);
    assert.equal(await terminate(agent), 0);
    agent = undefined;
    const ledger = JSON.parse(runCli(['ledger', '--data', data, '--json']).stdout) as { keys: { uniqueIdentifier: string; grantedToDevices: number }[] };
    assert.deepEqual(ledger.keys.map((k) => [k.uniqueIdentifier, k.grantedToDevices]), [[uid, 7]], 'granted once');
  } finally {
    agent?.kill('SIGKILL');
    if (agent) await exited(agent);
    await tap.stop();
    server.kill('SIGTERM');
    await broker.stop();
  }
});

it('Mosquitto is killed and restarted mid-run: the example says so, reconnects by itself and finishes; each grant once', async () => {
  const brokerPort = await freePort();
  let broker = await mosquittoOn(brokerPort);
  const { work, kms, data, port, server } = await startKeyServer('fb-broker');
  let agent: ChildProcess | undefined;
  try {
    const uid = await createActiveKey(kms, port, 'fb-broker-key', [usageLimits(1_000_000n)]);
    const key = addDevice(data, 'broker-dev', uid);
    agent = (await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${brokerPort}`])).child;
    let agentLog = '';
    agent.stderr!.on('data', (chunk: Buffer) => (agentLog += chunk.toString()));
    const example = startDevice(mqtt, ['--id', 'broker-dev', '--key', key, '--mqtt', `mqtt://127.0.0.1:${brokerPort}`, '--state', join(work, 'state'), '--resend-ms', '300', '--timeout', '60', 'allocate', '--uid', uid, '--count', '3', '--repeat', '40']);
    await until(() => example.lines.length >= 5 || example.child.exitCode !== null, 'five allocations before the broker dies', 30_000);
    await broker.stop();
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the broker is away for a second
    broker = await mosquittoOn(brokerPort);
    // The agent is restarted too (SIGKILL, as in a power cut): on this branch its MQTT client
    // ends itself at the first connection error (src/devices/mqtt-transport.ts connectMqtt keeps
    // its once('error') → end(true)); the reconnecting agent is branch mqtt-field's. What is
    // tested here is the example's own recovery, and that no grant is made twice.
    agent.kill('SIGKILL');
    await exited(agent);
    agent = (await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${brokerPort}`])).child;
    agent.stderr!.on('data', (chunk: Buffer) => (agentLog += chunk.toString()));
    const killer = setTimeout(() => example.child.kill('SIGKILL'), 60_000); // bounded: the rest takes a few seconds
    const end = await example.done;
    clearTimeout(killer);
    assert.equal(end.status, 0, `${example.lines.length} lines, the last ${JSON.stringify(example.lines.slice(-3))}; stderr: ${example.stderr()}; agent: ${agentLog.slice(-3000)}`);
    assert.equal(example.lines.filter((l) => l.op === 'allocate' && l.ok).length, 40);
    assert.match(example.stderr(), /lost the broker/);
    assert.match(example.stderr(), /reconnected to the broker/);
    assert.equal(await terminate(agent), 0);
    agent = undefined;
    const ledger = JSON.parse(runCli(['ledger', '--data', data, '--json']).stdout) as { keys: { uniqueIdentifier: string; grantedToDevices: number }[] };
    assert.deepEqual(ledger.keys.map((k) => [k.uniqueIdentifier, k.grantedToDevices]), [[uid, 40 * 3]], 'each allocation granted once, resends after the reconnect included');
  } finally {
    agent?.kill('SIGKILL');
    if (agent) await exited(agent);
    server.kill('SIGTERM');
    await broker.stop();
  }
});

it('noise on the serial line: the example drops the garbage, resynchronizes and is answered', async () => {
  const { work, kms, data, port, server } = await startKeyServer('fb-noise');
  const tap = await serialTap();
  let agent: ChildProcess | undefined;
  try {
    const uid = await createActiveKey(kms, port, 'fb-noise-key');
    const key = addDevice(data, 'noise-dev', uid);
    agent = (await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), ...tap.agentArgs])).child;
    const example = startDevice(serial, ['--id', 'noise-dev', '--key', key, ...tap.deviceArgs, '--state', join(work, 'state'), '--resend-ms', '300', '--timeout', '30', 'get', '--uid', uid, '--repeat', '20']);
    // Bursts of garbage towards the device while it works: random bytes, stray ENDs and ESCs, an
    // END-framed packet with a bad CRC, and one longer than any frame.
    const bursts = [Buffer.from([0xc0, 0xdb, 0x00, 0xc0]), Buffer.from('line noise \xc0\xdb\xdc', 'latin1'), Buffer.concat([Buffer.from([0xc0]), Buffer.alloc(5000, 0x41), Buffer.from([0xc0])]), Buffer.from([0xc0, 1, 2, 3, 4, 5, 6, 7, 8, 0xc0])];
    for (let i = 0; example.child.exitCode === null && i < 40; i++) {
      tap.noise!(bursts[i % bursts.length]!);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const end = await example.done;
    assert.equal(end.status, 0, `${JSON.stringify(example.lines)} ${example.stderr()}`);
    assert.equal(example.lines.filter((l) => l.op === 'get' && l.ok).length, 20);
    // The noise reached the example's decoder, which dropped it (its line statistics on stderr).
    const stats = /SLIP (\d+) packets, dropped (\d+) bad CRC, (\d+) oversize, (\d+) bad escapes/.exec(example.stderr());
    assert.ok(stats, example.stderr());
    assert.ok(Number(stats[2]) > 0 && Number(stats[3]) > 0, `bad packets were dropped: ${stats[0]}`);
  } finally {
    agent?.kill('SIGKILL');
    if (agent) await exited(agent);
    await tap.stop();
    server.kill('SIGTERM');
  }
});
