/**
 * The whole gateway from the shell, every part a real process: the development server, a
 * Mosquitto broker (or a socat pty pair), `kmip-edge run` and `kmip-edge device-sim`. A provisioned device gets its key,
 * an allocation and a lease; SIGTERM stops the agent cleanly; `kmip-edge ledger` shows the grant.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { UsageLimitsUnit, Tag } from '../../src/kmip/tables.generated.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { freePort } from '../../src/bench/free-port.ts';
import { runCli } from '../helpers/cli.ts';
import { addDevice, createActiveKey, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { startPtyPair } from '../helpers/pty-pair.ts';

it('dev-server + Mosquitto + kmip-edge run + device-sim: key, allocation, lease; clean SIGTERM; ledger', async () => {
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('e2e');
  let agent: ChildProcess | undefined;
  try {
    const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 1_000_000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]);
    const uid = await createActiveKey(kms, port, 'e2e-tape-key', [{ name: 'Usage Limits', value: limits }]);

    const key = addDevice(data, 'tape-drive-1', uid);

    const run = await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${broker.port}`]);
    agent = run.child;
    assert.equal(run.ready.ready, true);

    const sim = (...action: string[]) => runCli(['device-sim', '--id', 'tape-drive-1', '--key', key, '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--state', join(work, 'tape.counter'), ...action]);
    for (const [action, extra] of [['get', []], ['allocate', ['--count', '4096', '--repeat', '3']], ['lease', []], ['allocate', ['--count', '10', '--repeat', '40', '--concurrency', '8']]] as const) {
      const result = sim(action, '--uid', uid, ...extra);
      assert.equal(result.status, 0, `${action}: ${result.stdout} ${result.stderr}`);
      for (const line of result.stdout.trim().split('\n')) assert.equal((JSON.parse(line) as { ok: boolean }).ok, true, line);
    }
    assert.equal(readFileSync(join(work, 'tape.counter'), 'utf8').trim(), '45 0', 'the device persisted its counter (45 sent, no push received)');
    const denied = sim('get', '--uid', 'not-allowed');
    assert.equal(denied.status, 1);
    assert.match(denied.stdout, /"ok":false/);

    assert.equal(await terminate(agent), 0, 'SIGTERM drains and exits 0');
    agent = undefined;
    const ledger = JSON.parse(runCli(['ledger', '--data', data, '--json']).stdout) as { keys: { uniqueIdentifier: string; grantedToDevices: number; perDevice: Record<string, number> }[] };
    assert.deepEqual(ledger.keys.map((k) => [k.uniqueIdentifier, k.grantedToDevices, k.perDevice]), [[uid, 3 * 4096 + 40 * 10, { 'tape-drive-1': 3 * 4096 + 40 * 10 }]]);
  } finally {
    agent?.kill('SIGKILL');
    server.kill('SIGTERM');
    await broker.stop();
  }
});

it('the same over a serial line: kmip-edge run --serial and device-sim --serial on a socat pty pair', async () => {
  const pty = await startPtyPair();
  const { work, kms, data, port, server } = await startKeyServer('e2e-serial');
  let agent: ChildProcess | undefined;
  try {
    const uid = await createActiveKey(kms, port, 'e2e-serial-key');
    const key = addDevice(data, 'serial-dev', uid);
    const run = await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--serial', pty.agentEnd]);
    agent = run.child;
    const result = runCli(['device-sim', '--id', 'serial-dev', '--key', key, '--serial', pty.deviceEnd, '--state', join(work, 'serial.counter'), 'get', '--uid', uid, '--repeat', '2']);
    assert.equal(result.status, 0, `${result.stdout} ${result.stderr}`);
    assert.deepEqual(result.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { ok: boolean }).ok), [true, true]);
    assert.equal(await terminate(agent), 0);
    agent = undefined;
  } finally {
    agent?.kill('SIGKILL');
    server.kill('SIGTERM');
    pty.stop();
  }
});

it('kmip-edge run --embedded-broker: the agent starts its own MQTT broker (aedes) and device-sim uses it; devices are provisioned while it runs', async () => {
  const { work, kms, data, port, server } = await startKeyServer('e2e-embedded');
  let agent: ChildProcess | undefined;
  try {
    const uid = await createActiveKey(kms, port, 'e2e-embedded-key');
    const key = addDevice(data, 'embedded-dev', uid);
    const brokerPort = await freePort();
    const run = await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--embedded-broker', `127.0.0.1:${brokerPort}`]);
    agent = run.child;
    assert.equal(run.ready.mqtt, `mqtt://127.0.0.1:${brokerPort}`);
    const result = runCli(['device-sim', '--id', 'embedded-dev', '--key', key, '--mqtt', `mqtt://127.0.0.1:${brokerPort}`, '--state', join(work, 'embedded.counter'), 'get', '--uid', uid]);
    assert.equal(result.status, 0, `${result.stdout} ${result.stderr}`);

    // Provisioning while the agent runs (it holds the store): through its socket, effective at once.
    const lateKey = addDevice(data, 'late-dev', uid);
    const lateGet = runCli(['device-sim', '--id', 'late-dev', '--key', lateKey, '--mqtt', `mqtt://127.0.0.1:${brokerPort}`, '--state', join(work, 'late.counter'), 'get', '--uid', uid]);
    assert.equal(lateGet.status, 0, `${lateGet.stdout} ${lateGet.stderr}`);
    assert.deepEqual((JSON.parse(runCli(['device', 'list', '--data', data]).stdout) as { devices: { id: string }[] }).devices.map((d) => d.id), ['embedded-dev', 'late-dev']);
    const taken = runCli(['device', 'add', '--data', data, '--id', 'late-dev']);
    assert.deepEqual([taken.status, taken.stderr.trim()], [2, 'kmip-edge: device late-dev is already registered'], 'refused by the agent as by the store');
    assert.equal(runCli(['device', 'add', '--data', data, '--id', 'x', '--suite', 'rot13']).status, 2, 'bad usage is exit 2 through the agent too');
    assert.deepEqual(JSON.parse(runCli(['device', 'remove', '--data', data, '--id', 'late-dev']).stdout), { id: 'late-dev', removed: true });
    assert.equal(await terminate(agent), 0);
    agent = undefined;
  } finally {
    agent?.kill('SIGKILL');
    server.kill('SIGTERM');
  }
});
