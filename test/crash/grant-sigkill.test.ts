/**
 * Issue #13 finding 3 with real processes: `kmip-edge device-sim allocate --concurrency 8`
 * through Mosquitto to `kmip-edge run`, which is SIGKILLed while grants are in flight and started
 * again at once. The device resends what was not answered (the same frames) and keeps the lead
 * rule (PROTOCOL.md §3.1), so every resend is answered after the restart: the ledger holds
 * exactly the units the device reports it received, and every request succeeded.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { it } from 'node:test';
import { Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { ROOT, runCli } from '../helpers/cli.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { createActiveKey, exited, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';
import { until } from '../helpers/until.ts';

it('SIGKILL of the agent under device-sim --concurrency 8: units debited = units the device received', async () => {
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('grant-sigkill');
  let agent: ChildProcess | undefined;
  let sim: ChildProcess | undefined;
  try {
    const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 10_000_000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Object)]);
    const uid = await createActiveKey(kms, port, 'sigkill-key', [{ name: 'Usage Limits', value: limits }]);
    const added = runCli(['device', 'add', '--data', data, '--id', 'crash-dev', '--key-uid', uid, '--rate', '100000']);
    assert.equal(added.status, 0, added.stderr);
    const { key } = JSON.parse(added.stdout) as { key: string };
    const runArgs = ['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${broker.port}`];
    agent = (await startProcess(runArgs)).child;

    const repeat = 400;
    sim = spawn(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), 'device-sim', '--id', 'crash-dev', '--key', key, '--mqtt', `mqtt://127.0.0.1:${broker.port}`,
      '--state', join(work, 'crash.counter'), '--resend-ms', '200', 'allocate', '--uid', uid, '--count', '3', '--repeat', String(repeat), '--concurrency', '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    sim.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    sim.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const simDone = exited(sim);
    // Kill the agent twice while the device is busy, each time once some more grants were answered.
    for (const after of [60, 200]) {
      await until(() => stdout.split('\n').length > after, `${after} grants answered`, 120_000);
      agent.kill('SIGKILL');
      await exited(agent);
      agent = (await startProcess(runArgs)).child;
    }
    const simCode = await simDone;
    assert.equal(simCode, 0, `device-sim: ${stderr} ${stdout.split("\n").filter((l) => l.includes("false")).slice(0, 3).join(" ")}`);
    sim = undefined;
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as { ok: boolean; count: number });
    assert.equal(lines.length, repeat);
    assert.ok(lines.every((line) => line.ok), 'every grant answered with Success');
    const received = lines.reduce((sum, line) => sum + line.count, 0);
    assert.equal(await terminate(agent), 0);
    agent = undefined;
    const ledger = JSON.parse(runCli(['ledger', '--data', data, '--json']).stdout) as { keys: { uniqueIdentifier: string; grantedToDevices: number }[] };
    assert.equal(ledger.keys.find((k) => k.uniqueIdentifier === uid)!.grantedToDevices, received, 'the ledger debited what the device received');
  } finally {
    sim?.kill('SIGKILL');
    agent?.kill('SIGKILL');
    server.kill('SIGTERM');
    await broker.stop();
  }
});
