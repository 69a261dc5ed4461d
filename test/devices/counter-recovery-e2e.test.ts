/**
 * Issue #12 §5, counter recovery (PROTOCOL.md §3.2), every part a real process: dev server,
 * Mosquitto, `kmip-edge run`, `kmip-edge device-sim`, `kmip-edge device reset-counter`. A device
 * that lost its counter file is dropped as a replay (FRAME_REPLAYED); `device reset-counter`
 * through the running agent raises its floor and prints the counters to provision; the device
 * provisioned with them is served again. With the agent stopped the command works on the store.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { ROOT, runCli } from '../helpers/cli.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, createActiveKey, exited, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';
import { until } from '../helpers/until.ts';

it('a device that lost its counter is locked out until `device reset-counter`, then served again; offline too', async () => {
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('counter-recovery');
  let agent: ChildProcess | undefined;
  let lost: ChildProcess | undefined;
  try {
    const uid = await createActiveKey(kms, port, 'recovery-key');
    const key = addDevice(data, 'reflashed', uid);
    const state = join(work, 'reflashed.counter');
    const simArgs = ['device-sim', '--id', 'reflashed', '--key', key, '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--state', state];
    const run = await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${broker.port}`]);
    agent = run.child;
    let stderr = '';
    agent.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));

    const served = runCli([...simArgs, 'get', '--uid', uid, '--repeat', '70']);
    assert.equal(served.status, 0, served.stderr);

    // The device's flash is wiped: it starts again at counter 1, 70 below what the agent accepted.
    writeFileSync(state, '0 0\n');
    lost = spawn(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), ...simArgs, 'get', '--uid', uid], { stdio: 'ignore' });
    await until(() => /"code":"FRAME_REPLAYED"/.test(stderr), 'the agent to drop the device\'s frames as replays', 20_000);
    lost.kill('SIGKILL');
    await exited(lost);
    lost = undefined;

    const reset = runCli(['device', 'reset-counter', '--data', data, '--id', 'reflashed']);
    assert.equal(reset.status, 0, reset.stderr);
    const floor = JSON.parse(reset.stdout) as { id: string; counter: string; pushCounter: string };
    assert.equal(floor.id, 'reflashed');
    assert.equal(BigInt(floor.counter), 70n + (1n << 32n), 'the highest accepted (70) plus the recovery gap');
    writeFileSync(state, `${floor.counter} ${floor.pushCounter}\n`); // provisioned on the device
    const again = runCli([...simArgs, 'get', '--uid', uid, '--repeat', '2']);
    assert.equal(again.status, 0, `${again.stdout} ${again.stderr}`);
    assert.ok(again.stdout.trim().split('\n').every((line) => (JSON.parse(line) as { ok: boolean }).ok));

    assert.equal(await terminate(agent), 0);
    agent = undefined;
    // Offline (the command opens the store itself), with a floor given by the operator.
    const offline = runCli(['device', 'reset-counter', '--data', data, '--id', 'reflashed', '--floor', '99999999999999']);
    assert.equal(offline.status, 0, offline.stderr);
    assert.equal((JSON.parse(offline.stdout) as { counter: string }).counter, '99999999999999');
    const unknown = runCli(['device', 'reset-counter', '--data', data, '--id', 'nobody']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /no device nobody is registered/);
    assert.doesNotMatch(unknown.stderr, /\n\s+at /, 'no stack trace');
  } finally {
    lost?.kill('SIGKILL');
    agent?.kill('SIGKILL');
    server.kill('SIGTERM');
    await broker.stop();
  }
});
