/**
 * Put/Notify end to end, every part a real process: `kmip-edge dev-server --push-to` pushes to
 * `kmip-edge run --push-listen`, which acknowledges and relays to `kmip-edge device-sim listen`
 * through a real Mosquitto broker. A device that is offline receives the push when it returns —
 * also across an agent restart (SIGKILL) in between; the agent's cache shows the replacement.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { it } from 'node:test';
import { freePort } from '../../src/bench/free-port.ts';
import { ROOT, runCli } from '../helpers/cli.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, createActiveKey, exited, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';

interface PushLine { op: string; ok: boolean; operation?: string; uid?: string; replaces?: string; attributes?: string[] }

/** `device-sim … listen`: resolves with its lines once it has announced itself, and `done` when it exits. */
function listen(args: string[]): Promise<{ lines: PushLine[]; done: Promise<number | null> }> {
  const child: ChildProcess = spawn(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: PushLine[] = [];
  let buffered = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // 'close', not 'exit': only then has all of its output been read.
  const done = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code))).then((code) => {
    if (code !== 0) throw new Error(`device-sim exited ${code}: ${JSON.stringify(lines)} ${stderr}`);
    return code;
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        lines.push(JSON.parse(buffered.slice(0, nl)) as PushLine);
        buffered = buffered.slice(nl + 1);
        if (lines[lines.length - 1]!.op === 'hello') resolve({ lines, done });
      }
    });
    done.catch(reject);
  });
}

it('dev-server pushes Put and Notify to kmip-edge run; relayed over Mosquitto to device-sim, also after it was offline and the agent restarted', async () => {
  const broker = await startMosquitto();
  const listenPort = await freePort();
  const { work, kms, data, port, server } = await startKeyServer('push-e2e', ['--push-to', `127.0.0.1:${listenPort}`]);
  const runArgs = ['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${broker.port}`,
    '--push-listen', `127.0.0.1:${listenPort}`, '--push-cert', join(kms, 'client.pem'), '--push-key', join(kms, 'client.key'), '--push-ca', join(kms, 'ca.pem')];
  let agent: ChildProcess | undefined;
  try {
    const first = await createActiveKey(kms, port, 'relayed-key');
    const key = addDevice(data, 'relay-dev', first);
    const sim = ['device-sim', '--id', 'relay-dev', '--key', key, '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--state', join(work, 'relay.counter'), 'listen', '--seconds', '30'];
    const push = (...what: string[]) => JSON.parse(runCli(['dev-server', 'push', '--dir', kms, ...what]).stdout) as { pushed: number; acknowledged: number };

    const run = await startProcess(runArgs);
    agent = run.child;
    assert.equal(run.ready.pushListen, listenPort);

    // The Notify of the key's activation, sent before the agent listened, is retried by the server until acknowledged.
    for (let i = 0; (push('--list') as unknown as { unacknowledged: unknown[] }).unacknowledged.length > 0; i++) {
      assert.ok(i < 100, 'the server still has unacknowledged pushes');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Online: the activation's Notify (kept while the device was away), then a Notify and a Put, in order.
    const online = await listen([...sim, '--pushes', '3']);
    assert.deepEqual(push('--notify', first), { pushed: 1, acknowledged: 1 });
    assert.deepEqual(push('--put', first), { pushed: 1, acknowledged: 1 });
    await online.done;
    assert.deepEqual(online.lines.filter((l) => l.op === 'push').map((l) => [l.operation, l.uid]), [['Notify', first], ['Notify', first], ['Put', first]]);

    // Offline: the agent acknowledges the Put Replace at once and keeps it for the device.
    const second = await createActiveKey(kms, port, 'replacement-key');
    assert.deepEqual(push('--put', second, '--replaces', first), { pushed: 1, acknowledged: 1 });
    // The agent dies (SIGKILL) and restarts while the device is away: the outbox is on disk.
    agent.kill('SIGKILL');
    await exited(agent);
    agent = (await startProcess(runArgs)).child;
    const back = await listen([...sim, '--pushes', '1']);
    await back.done;
    const received = back.lines.filter((l) => l.op === 'push');
    assert.deepEqual(received.map((l) => [l.operation, l.uid, l.replaces]), [['Put', second, first]]);
    assert.ok(received[0]!.attributes!.includes('Lease Time') || received[0]!.attributes!.includes('State'), JSON.stringify(received[0]));

    assert.equal(await terminate(agent), 0);
    agent = undefined;
    const cached = (JSON.parse(runCli(['cache', '--data', data, '--json']).stdout) as { keys: { uniqueIdentifier: string }[] }).keys.map((k) => k.uniqueIdentifier);
    assert.ok(cached.includes(second) && !cached.includes(first), `the cache holds the replacement only: ${cached}`);
  } finally {
    agent?.kill('SIGKILL');
    server.kill('SIGTERM');
    await broker.stop();
  }
});
