/**
 * The agent on a full disk (issue #13.2), every part a real process: `kmip-edge dev-server`
 * (pushing), Mosquitto, `kmip-edge run` with its data folder on a real 2 MB tmpfs, and
 * `kmip-edge device-sim`. The disk is filled while the agent runs: grants get a clear refusal
 * (STORE_FULL), cached Gets are still answered, a pushed Put is not acknowledged (the server keeps
 * it); the space is freed and, without a restart, grants are served again and the server's resend
 * of the Put is acknowledged. The agent never exits, logs the disk's state once per change, and
 * every unit its ledger debited to the device was delivered to it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { it } from 'node:test';
import { freePort } from '../../src/bench/free-port.ts';
import { Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { ROOT, runCli } from '../helpers/cli.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, createActiveKey, exited, startKeyServer, terminate, upstreamArgs } from '../helpers/processes.ts';
import { mountTmpfs } from '../helpers/tmpfs.ts';
import { until } from '../helpers/until.ts';

const BIN = join(ROOT, 'dist/kmip-edge.mjs');

/** The built CLI, asynchronously (the agent's output keeps being read meanwhile); killed after `ms`. */
function cli(args: string[], ms = 60_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  return new Promise((resolve) => child.once('close', (status) => {
    clearTimeout(timer);
    resolve({ status, stdout, stderr });
  }));
}

interface SimLine { op: string; ok: boolean; count?: number; resultReason?: string; resultMessage?: string }

it('disk full under a running agent: grants refused clearly, cached Gets served, push not acknowledged; space freed: all served again, no restart, no unit lost', async () => {
  const fs = mountTmpfs(2 * 1024 * 1024);
  const broker = await startMosquitto();
  const listenPort = await freePort();
  const { work, kms, port, server } = await startKeyServer('disk-full', ['--push-to', `127.0.0.1:${listenPort}`]);
  const data = join(fs.dir, 'agent');
  let agent: ChildProcess | undefined;
  try {
    const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 1_000_000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]);
    const uid = await createActiveKey(kms, port, 'disk-full-key', [{ name: 'Usage Limits', value: limits }]);
    const key = addDevice(data, 'disk-dev', uid);

    agent = spawn(process.execPath, [BIN, 'run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${broker.port}`,
      '--push-listen', `127.0.0.1:${listenPort}`, '--push-cert', join(kms, 'client.pem'), '--push-key', join(kms, 'client.key'), '--push-ca', join(kms, 'ca.pem')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let logs = '';
    agent.stderr!.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      agent!.stdout!.once('data', () => resolve());
      agent!.once('exit', (code) => reject(new Error(`run exited ${code}: ${logs}`)));
    });
    const events = () => logs.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event?: string; msg?: string }).filter((l) => l.event === 'store-unwritable' || l.event === 'store-writable').map((l) => l.event);

    const delivered = { units: 0 };
    const sim = async (...action: string[]): Promise<SimLine[]> => {
      const result = await cli(['device-sim', '--id', 'disk-dev', '--key', key, '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--state', join(work, 'dev.counter'), ...action], 30_000);
      assert.ok(result.status === 0 || result.status === 1, `device-sim ${action.join(' ')} exited ${result.status}: ${result.stdout} ${result.stderr}`);
      const lines = result.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as SimLine);
      for (const line of lines) if (line.op === 'allocate' && line.ok) delivered.units += line.count!;
      return lines;
    };

    // Before: the key is cached by a Get, units granted.
    assert.deepEqual((await sim('get', '--uid', uid)).map((l) => l.ok), [true]);
    assert.deepEqual((await sim('allocate', '--uid', uid, '--count', '10', '--repeat', '3')).map((l) => l.ok), [true, true, true]);

    fs.fill();
    // Full: every grant is answered — with STORE_FULL once the disk said no (the first write that
    // hits the full disk may be any of the agent's) — and cached Gets are still served.
    let refused: SimLine | undefined;
    for (let round = 0; refused === undefined; round++) {
      assert.ok(round < 20, 'no grant was refused on the full disk');
      const lines = await sim('allocate', '--uid', uid, '--count', '10', '--repeat', '4', '--concurrency', '2');
      assert.equal(lines.length, 4, 'every request answered');
      refused = lines.find((l) => !l.ok);
    }
    assert.equal(refused.resultReason, 'GeneralFailure');
    assert.match(refused.resultMessage!, /^STORE_FULL/);
    assert.deepEqual((await sim('allocate', '--uid', uid, '--count', '10', '--repeat', '2')).map((l) => [l.ok, l.resultMessage?.slice(0, 10)]), [[false, 'STORE_FULL'], [false, 'STORE_FULL']]);
    assert.deepEqual((await sim('get', '--uid', uid, '--repeat', '3')).map((l) => l.ok), [true, true, true], 'cached Gets served on a full disk');

    // A pushed Put is not acknowledged: the server keeps it and tries again.
    const pushing = cli(['dev-server', 'push', '--dir', kms, '--put', uid], 120_000);
    await until(async () => {
      const listed = JSON.parse((await cli(['dev-server', 'push', '--dir', kms, '--list'])).stdout) as { unacknowledged: { operation: string; attempts: number; lastError?: string }[] };
      return listed.unacknowledged.some((p) => p.operation === 'Put' && p.attempts >= 1 && /reason 256/.test(p.lastError ?? ''));
    }, 'the Put refused by the agent (General Failure) and kept by the server', 20_000);
    assert.equal(agent.exitCode, null, 'the agent is still running');
    assert.deepEqual(events(), ['store-unwritable'], 'the full disk logged once');

    // Space again: grants resume without a restart, the Put's resend is acknowledged.
    fs.free();
    await until(async () => (await sim('allocate', '--uid', uid, '--count', '10')).every((l) => l.ok), 'a grant served again after space was freed', 30_000);
    assert.deepEqual(JSON.parse((await pushing).stdout), { pushed: 1, acknowledged: 1 });
    assert.deepEqual((await sim('allocate', '--uid', uid, '--count', '10', '--repeat', '3', '--concurrency', '2')).map((l) => l.ok), [true, true, true]);
    assert.deepEqual(events(), ['store-unwritable', 'store-writable'], 'and its recovery logged once');
    assert.equal(agent.exitCode, null);

    assert.equal(await terminate(agent), 0);
    agent = undefined;
    // A unit debited is a unit delivered: the ledger holds exactly what device-sim received.
    const ledger = JSON.parse(runCli(['ledger', '--data', data, '--json']).stdout) as { keys: { uniqueIdentifier: string; grantedToDevices: number; perDevice: Record<string, number> }[] };
    assert.deepEqual(ledger.keys.map((k) => [k.uniqueIdentifier, k.grantedToDevices, k.perDevice]), [[uid, delivered.units, { 'disk-dev': delivered.units }]]);
  } finally {
    if (agent) {
      agent.kill('SIGKILL');
      await exited(agent);
    }
    server.kill('SIGTERM');
    await exited(server);
    await broker.stop();
    fs.unmount();
  }
});
