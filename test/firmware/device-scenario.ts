/**
 * The C examples against the running agent, every part a real process: `kmip-edge dev-server`
 * (with --push-to), `kmip-edge run`, and the example (native, or the armhf build under
 * qemu-arm) on a socat pty pair or through Mosquitto. Between the example and the agent sits a
 * tap that sees every frame — over serial a relay between two pty pairs, over MQTT a subscriber
 * to both topics — so the test can check, from the wire, that counters are never reused, and can
 * replay a captured frame to the agent.
 *
 * The scenario: Get (fingerprint = the key server's), allocations (ledger), a lease; the example
 * SIGKILLed in the middle of a run of allocations, restarted, accepted; an old frame replayed and
 * refused; a Put Replace pushed by the key server, received, acknowledged (not delivered again).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { freePort } from '../../src/bench/free-port.ts';
import { parseFrameHeader } from '../../src/devices/frame.ts';
import { connectMqtt, frameOf, payloadOf } from '../../src/devices/mqtt-transport.ts';
import { SerialLine } from '../../src/devices/serial-transport.ts';
import { keyBlockOf, keyMaterialOf } from '../../src/kmip/payloads.ts';
import { Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { runCli } from '../helpers/cli.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, createActiveKey, exited, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';
import { startPtyPair } from '../helpers/pty-pair.ts';
import { until } from '../helpers/until.ts';

/** How to start the example: the binary, or qemu-arm and its arguments before the binary. */
export interface DeviceProgram { command: string; args: string[] }

export interface DeviceLine { op: string; ok: boolean; uid?: string; count?: number; counter?: number; fingerprint?: string; bytes?: number; operation?: string; replaces?: string; attributes?: string[]; error?: string; resultReason?: string }

interface Captured { frame: Uint8Array; counter: bigint; replyTo: bigint | undefined; phase: string }

/** Frames between the example and the agent, both ways, and a way to send the agent a frame. */
export interface Tap {
  /** The example's flags for its link: --serial PATH or --mqtt URL. */
  deviceArgs: string[];
  /** The agent's flags for its link. */
  agentArgs: string[];
  up: Captured[];
  down: Captured[];
  phase: string;
  inject(frame: Uint8Array): void;
  /** Serial only: raw bytes to the example (line noise). */
  noise?(bytes: Uint8Array): void;
  stop(): Promise<void>;
}

function capture(list: Captured[], frame: Uint8Array, phase: string): void {
  const { header } = parseFrameHeader(frame);
  list.push({ frame: Uint8Array.from(frame), counter: header.counter, replyTo: header.replyTo, phase });
}

/** Serial: example ⇄ pty pair A ⇄ relay (this process) ⇄ pty pair B ⇄ agent. */
export async function serialTap(): Promise<Tap> {
  const a = await startPtyPair();
  const b = await startPtyPair();
  const tap: Tap = { deviceArgs: ['--serial', a.deviceEnd], agentArgs: ['--serial', b.agentEnd], up: [], down: [], phase: '', inject: () => {}, stop: async () => {} };
  let toDevice: SerialLine | undefined;
  const toAgent = await SerialLine.open(b.deviceEnd, (frame) => {
    capture(tap.down, frame, tap.phase);
    toDevice?.send(frame);
  });
  toDevice = await SerialLine.open(a.agentEnd, (frame) => {
    capture(tap.up, frame, tap.phase);
    toAgent.send(frame);
  });
  tap.inject = (frame) => toAgent.send(frame);
  tap.noise = (bytes) => toDevice!.sendRaw(bytes);
  tap.stop = async () => {
    await toDevice.close();
    await toAgent.close();
    a.stop();
    b.stop();
  };
  return tap;
}

/** MQTT: a subscriber to the device's two topics on the same broker; it publishes what it injects. */
export async function mqttTap(port: number, deviceId: string): Promise<Tap> {
  const client: MqttClient = await connectMqtt({ host: '127.0.0.1', port, clientId: `tap-${process.pid}` });
  const upTopic = `kmip-edge/${deviceId}/up`;
  const downTopic = `kmip-edge/${deviceId}/down`;
  const tap: Tap = {
    deviceArgs: ['--mqtt', `mqtt://127.0.0.1:${port}`], agentArgs: ['--mqtt', `mqtt://127.0.0.1:${port}`], up: [], down: [], phase: '',
    inject: (frame) => void client.publish(upTopic, payloadOf(frame), { qos: 1 }),
    stop: async () => void (await client.endAsync(true)),
  };
  client.on('message', (topic, payload) => capture(topic === upTopic ? tap.up : tap.down, frameOf(payload), tap.phase));
  await client.subscribeAsync([upTopic, downTopic], { qos: 1 });
  return tap;
}

/** The example, started; its JSON lines as they come, and its end. */
export function startDevice(program: DeviceProgram, args: string[]): { child: ChildProcess; lines: DeviceLine[]; stderr: () => string; done: Promise<{ status: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn(program.command, [...program.args, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: DeviceLine[] = [];
  let buffered = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      lines.push(JSON.parse(buffered.slice(0, nl)) as DeviceLine);
      buffered = buffered.slice(nl + 1);
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // 'close': all of its output has been read.
  const done = new Promise<{ status: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (status, signal) => resolve({ status, signal })));
  return { child, lines, stderr: () => stderr, done };
}

/** Runs the example to its end (bounded: it has its own --timeout, and is killed after `limitMs`). */
export async function device(program: DeviceProgram, args: string[], limitMs = 60_000): Promise<{ status: number | null; lines: DeviceLine[]; stderr: string }> {
  const run = startDevice(program, args);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), limitMs);
  const { status } = await run.done;
  clearTimeout(timer);
  return { status, lines: run.lines, stderr: run.stderr() };
}

const fingerprintOf = (material: Uint8Array): string => createHash('sha256').update(material).digest('hex').slice(0, 16);

/**
 * The whole scenario for one example over one link. `program` starts the example; `transport`
 * chooses the link (and the tap).
 */
export async function deviceScenario(program: DeviceProgram, transport: 'serial' | 'mqtt', name: string): Promise<void> {
  const listenPort = await freePort();
  const mosquitto = transport === 'mqtt' ? await startMosquitto() : undefined;
  const { work, kms, data, port, server } = await startKeyServer(name, ['--push-to', `127.0.0.1:${listenPort}`]);
  const deviceId = `${name}-dev`;
  const tap = transport === 'mqtt' ? await mqttTap(mosquitto!.port, deviceId) : await serialTap();
  let agent: ChildProcess | undefined;
  let agentLog = '';
  const admin = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port, ca: readFileSync(join(kms, 'ca.pem')), cert: readFileSync(join(kms, 'client.pem')), key: readFileSync(join(kms, 'client.key')) }), version: { major: 1, minor: 2 } });
  try {
    const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 10_000_000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]);
    const first = await createActiveKey(kms, port, `${name}-tape-key`, [{ name: 'Usage Limits', value: limits }]);
    const second = await createActiveKey(kms, port, `${name}-replacement`);
    const key = addDevice(data, deviceId, first);
    const run = await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), ...tap.agentArgs,
      '--push-listen', `127.0.0.1:${listenPort}`, '--push-cert', join(kms, 'client.pem'), '--push-key', join(kms, 'client.key'), '--push-ca', join(kms, 'ca.pem')]);
    agent = run.child;
    agent.stderr!.on('data', (chunk: Buffer) => (agentLog += chunk.toString()));
    // The activation Notifies the key server sent before the agent listened are retried until the
    // agent takes them: wait for that, so that what reaches the device later is only what the test pushes.
    await until(() => (JSON.parse(runCli(['dev-server', 'push', '--dir', kms, '--list']).stdout) as { unacknowledged: unknown[] }).unacknowledged.length === 0, 'the key server has no unacknowledged push', 60_000);
    const state = join(work, 'device.state');
    const identity = ['--id', deviceId, '--key', key, ...tap.deviceArgs, '--state', state, '--timeout', '20'];
    const ok = (result: { status: number | null; lines: DeviceLine[]; stderr: string }, what: string) => {
      assert.equal(result.status, 0, `${what}: exit ${result.status}\n${JSON.stringify(result.lines)}\n${result.stderr}`);
      for (const line of result.lines) assert.equal(line.ok, true, `${what}: ${JSON.stringify(line)}`);
      return result.lines;
    };

    // Get: the key the example received is the key server's (compared by fingerprint; neither side prints the bytes).
    tap.phase = 'get';
    const got = ok(await device(program, [...identity, 'get', '--uid', first]), 'get').filter((l) => l.op === 'get');
    const serverKey = fingerprintOf(keyMaterialOf(keyBlockOf((await admin.get(first)).object)));
    assert.deepEqual(got.map((l) => [l.uid, l.fingerprint, l.bytes]), [[first, serverKey, 32]]);

    // Allocations and a lease. (Any run may also receive the activation Notify of `first`, which
    // the agent relays when it first hears from the device: push lines are not counted here.)
    tap.phase = 'allocate';
    const allocated = ok(await device(program, [...identity, 'allocate', '--uid', first, '--count', '4096', '--repeat', '3']), 'allocate').filter((l) => l.op === 'allocate');
    assert.equal(allocated.length, 3);
    tap.phase = 'lease';
    const leased = ok(await device(program, [...identity, 'lease', '--uid', first]), 'lease').filter((l) => l.op === 'lease');
    assert.equal(leased.length, 1);

    // A tape encrypted in chunks: the key once, then each chunk drawn from the key's usage
    // allowance before it is encrypted (the last chunk is the remainder).
    tap.phase = 'tape';
    const tape = ok(await device(program, [...identity, 'tape', '--uid', first, '--bytes', '100000', '--chunk', '32768']), 'tape').filter((l) => l.op !== 'push');
    assert.deepEqual(tape.map((l) => [l.op, l.count ?? l.bytes ?? null]), [['get', 32], ['allocate', 32768], ['allocate', 32768], ['allocate', 32768], ['allocate', 1696], ['tape', 100000]]);
    assert.equal(tape[0]!.fingerprint, serverKey);

    // SIGKILL in the middle of a run of allocations (after 20 answered: their kept replies have
    // taken all 16 slots since the first allocations), then a restart with the same state file.
    tap.phase = 'killed';
    const killed = startDevice(program, [...identity, 'allocate', '--uid', first, '--count', '10', '--repeat', '100000']);
    await until(() => killed.lines.length >= 20 || killed.child.exitCode !== null, 'the example answered 20 allocations', 60_000);
    killed.child.kill('SIGKILL');
    assert.equal((await killed.done).signal, 'SIGKILL', `the example was killed mid-run: ${killed.stderr()}`);
    tap.phase = 'restarted';
    const restarted = ok(await device(program, [...identity, 'allocate', '--uid', first, '--count', '10', '--repeat', '3']), 'after the restart');
    assert.equal(restarted.filter((l) => l.op === 'allocate').length, 3, 'the agent accepts the frames after the restart');

    // From the wire: a counter is never used for two different frames (a resend is the same
    // bytes), and after the restart every counter is above all counters sent before.
    const byCounter = new Map<bigint, string>();
    for (const { frame, counter } of tap.up) {
      const hex = toHex(frame);
      assert.ok(!byCounter.has(counter) || byCounter.get(counter) === hex, `up counter ${counter} was used for two different frames`);
      byCounter.set(counter, hex);
    }
    const before = tap.up.filter((f) => f.phase !== 'restarted').map((f) => f.counter);
    const after = tap.up.filter((f) => f.phase === 'restarted').map((f) => f.counter);
    assert.ok(after.length >= 3 && before.length >= 25, `${before.length} frames before, ${after.length} after`);
    assert.ok(after.every((c) => before.every((b) => c > b)), `after the restart the counters (${after.join(',')}) are above all before (highest ${before.reduce((m, c) => (c > m ? c : m), 0n)})`);

    // Replay: the first allocation frame, captured, sent to the agent again: dropped as a replay
    // (its counter is far below the window and its kept reply slot was reused), never answered.
    const old = tap.up.find((f) => f.phase === 'allocate')!;
    const repliesBefore = tap.down.filter((f) => f.replyTo === old.counter).length;
    const replaysBefore = (agentLog.match(/FRAME_REPLAYED/g) ?? []).length;
    tap.phase = 'replay';
    tap.inject(old.frame);
    await until(() => (agentLog.match(/FRAME_REPLAYED/g) ?? []).length > replaysBefore, 'the agent logs the replayed frame as dropped (FRAME_REPLAYED)', 10_000);
    assert.equal(tap.down.filter((f) => f.replyTo === old.counter).length, repliesBefore, 'the replayed frame was not answered');

    // Put Replace: the key server pushes it, the agent relays it, the example acknowledges it.
    // Notifies queued before it are relayed first, one per run of the example: the activation of
    // `first`, and one for each change of its Usage Limits the allocations made (the development
    // server sends a Notify for every attribute change) — as many as the runs above drew.
    tap.phase = 'push';
    const pushLines: DeviceLine[] = [];
    let pushed: { pushed: number; acknowledged: number } | undefined;
    for (let attempt = 0; attempt < 16 && !pushLines.some((l) => l.operation === 'Put'); attempt++) {
      const listener = startDevice(program, [...identity, 'listen', '--pushes', '1', '--seconds', '30']);
      await until(() => listener.lines.some((l) => l.op === 'hello') || listener.child.exitCode !== null, 'the example announced itself', 30_000);
      if (pushed === undefined) pushed = JSON.parse(runCli(['dev-server', 'push', '--dir', kms, '--put', second, '--replaces', first]).stdout) as { pushed: number; acknowledged: number };
      const end = await listener.done;
      assert.equal(end.status, 0, `listen: ${JSON.stringify(listener.lines)} ${listener.stderr()}`);
      pushLines.push(...listener.lines.filter((l) => l.op === 'push'));
    }
    assert.deepEqual(pushed, { pushed: 1, acknowledged: 1 });
    const put = pushLines.find((l) => l.operation === 'Put');
    assert.ok(put, `a Put reached the example: ${JSON.stringify(pushLines)}`);
    assert.deepEqual([put.uid, put.replaces], [second, first]);
    // The acknowledgement (reply_to = the push's counter) went up: the example exits right after
    // sending it, so it may still be on its way through the tap.
    const pushCounters = () => new Set(tap.down.filter((f) => f.phase === 'push' && f.replyTo === undefined).map((f) => f.counter));
    await until(() => tap.up.some((f) => f.phase === 'push' && f.replyTo !== undefined && pushCounters().has(f.replyTo)), `an acknowledgement of a push went up`, 10_000);
    // Acknowledged: the agent does not send it again when the device is next heard from.
    const again = await device(program, [...identity, 'listen', '--pushes', '1', '--seconds', '3']);
    assert.deepEqual(again.lines.map((l) => l.op), ['hello'], `nothing more to deliver: ${JSON.stringify(again.lines)} ${again.stderr}`);
    assert.equal(again.status, 1, 'listen ends without a push (its --seconds passed)');

    // The ledger (after a clean stop): every grant the agent answered, each counted once.
    assert.equal(await terminate(agent), 0);
    agent = undefined;
    // Requests of a phase that the agent answered (a reply may come down after the phase ended).
    const answered = (phase: string) => new Set(tap.up.filter((u) => u.phase === phase && tap.down.some((d) => d.replyTo === u.counter)).map((u) => u.counter)).size;
    const expected = 4096 * answered('allocate') + 100000 + 10 * answered('killed') + 10 * answered('restarted');
    assert.equal(answered('tape'), 5, 'the tape run: one Get and four allocations');
    assert.equal(answered('allocate'), 3);
    const ledger = JSON.parse(runCli(['ledger', '--data', data, '--json']).stdout) as { keys: { uniqueIdentifier: string; grantedToDevices: number; perDevice: Record<string, number> }[] };
    const entry = ledger.keys.find((k) => k.uniqueIdentifier === first);
    assert.deepEqual([entry?.grantedToDevices, entry?.perDevice[deviceId]], [expected, expected], `ledger ${JSON.stringify(ledger)}`);
  } finally {
    agent?.kill('SIGKILL');
    if (agent) await exited(agent);
    await admin.close();
    await tap.stop();
    server.kill('SIGTERM');
    await mosquitto?.stop();
  }
}
