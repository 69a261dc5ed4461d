/**
 * A running agent, watched as an operator does, every part a real process (the development server
 * on LevelDB, Mosquitto, `kmip-edge run`, device-sim): `kmip-edge status` through the admin
 * socket (upstream state, keys with lease and remaining allocation, devices with last seen and
 * pending pushes), `ledger` and `cache` answered while the agent holds the store, and the log
 * events of the operator guide — device added/removed/updated, refill, pushes received / applied /
 * acknowledged / relayed, upstream connect failure, offline and online again. With no agent, or
 * the socket of a killed one: one line, exit 1.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { it } from 'node:test';
import { freePort } from '../../src/bench/free-port.ts';
import { UsageLimitsUnit, Tag } from '../../src/kmip/tables.generated.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { ROOT, runCli } from '../helpers/cli.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, createActiveKey, exited, startKeyServer, startProcess, upstreamArgs } from '../helpers/processes.ts';

interface Status {
  pid: number;
  upstream: { state: string; since: string; lastError: { code: string; reason: string; at: string } | null };
  mqtt: { connected: boolean } | null;
  keys: { uniqueIdentifier: string; names: string[]; state: string; leaseExpiresAt: string | null; allocatedFromUpstream: number | null; grantedToDevices: number | null; remaining: number | null }[];
  devices: { id: string; suite: string; lastSeen: string | null; pendingPushes: number }[];
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/;

/** `kmip-edge run` with its log lines (stderr, JSON: not a terminal) collected as they come. */
async function startAgent(args: string[]): Promise<{ child: ChildProcess; logs: Record<string, unknown>[]; ready: Record<string, unknown> }> {
  const child = spawn(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let buffered = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      logs.push(JSON.parse(line) as Record<string, unknown>); // every line is JSON when stderr is not a terminal
    }
  });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    child.stdout!.once('data', (line: Buffer) => resolve(JSON.parse(line.toString()) as Record<string, unknown>));
    child.once('exit', (code) => reject(new Error(`run exited ${code}: ${JSON.stringify(logs)}`)));
  });
  return { child, logs, ready };
}

async function eventually<T>(what: string, seconds: number, check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${seconds} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

it('kmip-edge status, ledger and cache on a running agent; the operator log events; no agent: exit 1', async () => {
  const broker = await startMosquitto();
  const listenPort = await freePort();
  const devServerArgs = ['--store', 'leveldb', '--push-to', `127.0.0.1:${listenPort}`];
  const { work, kms, data, port, server } = await startKeyServer('status', devServerArgs);
  let upstream: ChildProcess = server;
  let agent: ChildProcess | undefined;
  try {
    const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 1_000_000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]);
    const uid = await createActiveKey(kms, port, 'status-key', [{ name: 'Usage Limits', value: limits }]);
    const later = await createActiveKey(kms, port, 'fetched-later');
    const key1 = addDevice(data, 'gauge-1', uid, later);
    addDevice(data, 'gauge-2', uid);

    const none = runCli(['status', '--data', data]);
    assert.deepEqual([none.status, none.stdout, none.stderr], [1, '', `kmip-edge: no agent is running on ${data} (no admin socket); start it with kmip-edge run --data ${data}\n`]);

    const runArgs = ['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${broker.port}`,
      '--push-listen', `127.0.0.1:${listenPort}`, '--push-cert', join(kms, 'client.pem'), '--push-key', join(kms, 'client.key'), '--push-ca', join(kms, 'ca.pem')];
    const run = await startAgent(runArgs);
    agent = run.child;
    const { logs } = run;
    const events = (name: string) => logs.filter((l) => l.event === name);
    const status = (): Status => {
      const result = runCli(['status', '--data', data, '--json']);
      assert.equal(result.status, 0, result.stderr);
      return JSON.parse(result.stdout) as Status;
    };
    const sim = (...action: string[]) => runCli(['device-sim', '--id', 'gauge-1', '--key', key1, '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--state', join(work, 'gauge.counter'), ...action]);

    // Devices provisioned while the agent runs are logged.
    addDevice(data, 'short-lived', uid);
    assert.deepEqual(JSON.parse(runCli(['device', 'remove', '--data', data, '--id', 'short-lived']).stdout), { id: 'short-lived', removed: true });
    const updated = runCli(['device', 'update', '--data', data, '--id', 'gauge-2', '--key-uid', uid, '--rate', '20']);
    assert.equal(updated.status, 0, updated.stderr);
    await eventually('device events', 10, () => (events('device_updated').length === 1 ? true : undefined));
    assert.deepEqual(events('device_added').map((l) => l.device), ['short-lived']);
    assert.deepEqual(events('device_removed').map((l) => [l.level, l.device]), [[30, 'short-lived']]);
    assert.deepEqual(events('device_updated').map((l) => [l.level, l.device]), [[30, 'gauge-2']]);

    const fresh = status();
    assert.equal(fresh.pid, agent.pid);
    assert.equal(fresh.upstream.state, 'online');
    assert.match(fresh.upstream.since, ISO);
    assert.deepEqual(fresh.mqtt, { connected: true });
    assert.deepEqual(fresh.devices.map((d) => [d.id, d.suite, d.lastSeen]), [['gauge-1', 'aes-256-gcm', null], ['gauge-2', 'aes-256-gcm', null]]);

    // A device at work: reads (logged at debug only), an allocation (a refill from the upstream).
    assert.equal(sim('get', '--uid', uid, '--repeat', '2').status, 0);
    const allocated = sim('allocate', '--uid', uid, '--count', '50');
    assert.equal(allocated.status, 0, allocated.stdout + allocated.stderr);
    const working = status();
    const [gauge1, gauge2] = working.devices;
    assert.match(gauge1!.lastSeen!, ISO);
    assert.equal(gauge2!.lastSeen, null, 'gauge-2 was never heard from');
    const row = working.keys.find((k) => k.uniqueIdentifier === uid)!;
    assert.deepEqual([row.names, row.state, row.grantedToDevices], [['status-key'], 'Active', 50]);
    assert.match(row.leaseExpiresAt!, ISO);
    assert.equal(row.remaining, row.allocatedFromUpstream! - 50);
    // (the log lines arrive while this process waits: runCli blocks it)
    const refills = await eventually('the refills logged add up to the allocation', 10, () => {
      const lines = events('refill');
      return lines.reduce((sum, l) => sum + (l.units as number), 0) === row.allocatedFromUpstream ? lines : undefined;
    });
    assert.ok(refills.length >= 1 && refills.every((l) => l.uid === uid && l.outcome === 'Success' && typeof l.units === 'number' && typeof l.ms === 'number' && l.level === 30), JSON.stringify(refills));
    await eventually('the grant logged', 10, () => (logs.some((l) => l.msg === 'units granted') ? true : undefined));
    assert.deepEqual(logs.filter((l) => l.msg === 'key served'), [], 'successful reads are not logged at info');

    const human = runCli(['status', '--data', data]);
    assert.equal(human.status, 0);
    assert.match(human.stdout, new RegExp(`^agent pid ${agent.pid}, started .+\\nupstream online since .+\\nmqtt connected\\nkeys: 1\\n  ${uid} status-key Active lease \\S+, ${row.remaining} units remaining \\(${row.allocatedFromUpstream} allocated, 50 granted\\)\\ndevices: 2\\n  gauge-1 aes-256-gcm last seen \\S+, \\d+ pushes pending\\n  gauge-2 aes-256-gcm last seen never, \\d+ pushes pending\\n$`));

    // ledger and cache while the agent holds the store (before: "another process holds it").
    const ledger = runCli(['ledger', '--data', data, '--json']);
    assert.equal(ledger.status, 0, ledger.stderr);
    assert.deepEqual(JSON.parse(ledger.stdout), { keys: [{ uniqueIdentifier: uid, allocatedFromUpstream: row.allocatedFromUpstream, grantedToDevices: 50, remaining: row.remaining, perDevice: { 'gauge-1': 50 } }] });
    assert.match(runCli(['ledger', '--data', data]).stdout, new RegExp(`^${uid}: ${row.allocatedFromUpstream} allocated from upstream, 50 granted to devices, ${row.remaining} remaining\\n  gauge-1: 50\\n$`));
    const cache = runCli(['cache', '--data', data, '--json']);
    assert.equal(cache.status, 0, cache.stderr);
    const [cached] = (JSON.parse(cache.stdout) as { keys: Record<string, unknown>[] }).keys;
    assert.deepEqual({ ...cached, activationDate: undefined, lastChangeDate: undefined, leaseExpiresAt: undefined, refreshedAt: undefined }, {
      uniqueIdentifier: uid, objectType: 'SymmetricKey', names: ['status-key'], objectGroups: [], state: 'Active', cryptographicAlgorithm: 'AES', cryptographicLength: 256,
      cryptographicUsageMask: ['Encrypt', 'Decrypt'], usageLimitsUnit: 'Byte', processStartDate: null, protectStopDate: null, deactivationDate: null, compromiseDate: null,
      activationDate: undefined, lastChangeDate: undefined, leaseExpiresAt: undefined, refreshedAt: undefined,
    });
    for (const field of ['activationDate', 'lastChangeDate', 'leaseExpiresAt', 'refreshedAt']) assert.match(cached![field] as string, ISO, field);
    assert.equal(cached!.leaseExpiresAt, row.leaseExpiresAt);
    assert.match(runCli(['cache', '--data', data]).stdout, new RegExp(`^${uid} status-key SymmetricKey Active lease \\S+Z\\n$`));

    // A push: received, applied, acknowledged, relayed to both devices (neither listening), pending for each.
    const push = (...what: string[]) => JSON.parse(runCli(['dev-server', 'push', '--dir', kms, ...what]).stdout) as Record<string, unknown>;
    await eventually('the activation Notifies acknowledged', 30, () => ((push('--list').unacknowledged as unknown[]).length === 0 ? true : undefined));
    const before = status().devices.map((d) => d.pendingPushes);
    assert.deepEqual(push('--notify', uid), { pushed: 1, acknowledged: 1 });
    const after = await eventually('pending pushes', 10, () => {
      const pending = status().devices.map((d) => d.pendingPushes);
      return pending.every((n, i) => n === before[i]! + 1) ? pending : undefined;
    });
    assert.equal(after.length, 2);
    for (const name of ['push_received', 'push_applied', 'push_acknowledged']) {
      await eventually(`${name} logged`, 10, () => (events(name).some((l) => l.operation === 'Notify' && l.uid === uid && l.level === 30) ? true : undefined));
    }
    await eventually('push_relayed to both devices', 10, () => (['gauge-1', 'gauge-2'].every((d) => events('push_relayed').some((l) => l.device === d)) ? true : undefined));

    // The upstream goes away: a key not cached yet cannot be fetched — connect failure, offline.
    upstream.kill('SIGTERM');
    await exited(upstream);
    assert.equal(sim('get', '--uid', later).status, 1, 'not cached, upstream down: refused');
    const offline = await eventually('offline in status', 30, () => {
      const s = status();
      return s.upstream.state === 'offline' ? s : undefined;
    });
    assert.equal(offline.upstream.lastError!.code, 'NET_CONNECT_FAILED');
    assert.match(offline.upstream.lastError!.reason, /ECONNREFUSED/);
    assert.match(offline.upstream.lastError!.at, ISO);
    await eventually('upstream_offline logged', 10, () => (events('upstream_offline').length > 0 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 500)); // any further lines of the failed calls
    assert.equal(events('upstream_offline').length, 1, 'one transition, however many calls failed');
    assert.equal(events('upstream_offline')[0]!.level, 40);
    assert.match(events('upstream_offline')[0]!.reason as string, /ECONNREFUSED/);
    assert.ok(events('upstream_connect_failed').some((l) => l.level === 40 && /ECONNREFUSED/.test(l.reason as string) && l.upstream === `127.0.0.1:${port}`));
    assert.equal(sim('get', '--uid', uid).status, 0, 'the cached key is still served offline');

    // Back: the next call that reaches the upstream closes the breaker again.
    // (The start-up probe logged upstream_online once already.)
    const onlineBefore = events('upstream_online').length;
    upstream = (await startProcess(['dev-server', '--port', String(port), '--dir', kms, ...devServerArgs])).child;
    await eventually('online again', 60, () => {
      sim('lease', '--uid', uid);
      return events('upstream_online').length === onlineBefore + 1 ? true : undefined;
    });
    assert.equal(status().upstream.state, 'online');

    // The agent is killed: its socket stays behind, and nothing answers on it.
    agent.kill('SIGKILL');
    await exited(agent);
    agent = undefined;
    const stale = runCli(['status', '--data', data]);
    assert.equal(stale.status, 1);
    assert.match(stale.stderr, new RegExp(`^kmip-edge: no running agent answers on ${data}: .*ECONNREFUSED.*\\n$`));
    // and `ledger` reads the store directly again
    assert.equal(JSON.parse(runCli(['ledger', '--data', data, '--json']).stdout).keys[0].grantedToDevices, 50);
  } finally {
    agent?.kill('SIGKILL');
    upstream.kill('SIGTERM');
    await broker.stop();
  }
});
