/**
 * `kmip-edge backup` and `restore` with SIGKILL in the middle (issue #15.3), with real processes:
 * the development server, Mosquitto, `kmip-edge run` and `device-sim` from the built bundle, on an
 * agent folder holding 3,000 provisioned devices besides a device that fetched three keys and drew
 * usage allocations.
 *   - While the agent runs: `master-key rotate` and `restore` into its folder are refused with one
 *     line; `backup` is taken by the agent itself (source "running agent"), owner-only; the agent
 *     SIGKILLed in the middle of a backup leaves no partial backup file and restarts with every device.
 *   - Backups of the stopped store, the backup command SIGKILLed at random moments: the backup
 *     file is either absent or whole — checksum right, every record of the store in it.
 *   - Restores, SIGKILLed at random moments: the target folder holds no store or the whole backup;
 *     an interrupted restore run again completes and leaves no temporary store.
 *   - The running agent's backup restored into a new folder: with the key server stopped, the
 *     restored agent serves the same three keys to the same device (its key and counters restored,
 *     key material from the sealed cache), and shows the same ledger, devices and cache.
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { UsageLimitsUnit, Tag } from '../../src/kmip/tables.generated.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { readBackup } from '../../src/store/snapshot.ts';
import { counterKey } from '../../src/devices/replay-guard.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { runCli } from '../helpers/cli.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, createActiveKey, exited, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';
import { makeSealedFixture } from '../store/sealed-fixture.ts';
import { runUntilKilled } from './kill-points.ts';

const CYCLES = 8;

/** The records of a store, as one digest and a count (opened only while no process holds it). */
async function storeDigest(path: string): Promise<{ records: number; digest: string }> {
  const store = await LevelStore.open(path);
  const hash = createHash('sha256');
  let records = 0;
  try {
    for await (const [key, value] of store.entries('')) {
      hash.update(`${key}\0${value.length}\0`).update(value);
      records++;
    }
  } finally {
    await store.close();
  }
  return { records, digest: hash.digest('hex') };
}

function backupDigest(path: string): { records: number; digest: string } {
  const hash = createHash('sha256');
  const { records } = readBackup(path);
  for (const [key, value] of records) hash.update(`${key}\0${value.length}\0`).update(value);
  return { records: records.length, digest: hash.digest('hex') };
}

const json = (args: string[]): unknown => {
  const run = runCli(args);
  assert.equal(run.status, 0, `${args.join(' ')}: ${run.stderr}`);
  return JSON.parse(run.stdout);
};

/** Kill half the cycles once `marker` shows the work has begun (plus a random part of a run), half anywhere in a run. */
function killPoint(cycle: number, runMs: number, marker: () => boolean): { when: () => boolean } | { afterMs: number } {
  if (cycle % 2 === 1) return { afterMs: Math.floor(Math.random() * runMs) };
  let seenAt: number | undefined;
  const extra = (Math.random() * runMs) / 4;
  return { when: () => (seenAt ??= marker() ? Date.now() : undefined) !== undefined && Date.now() - seenAt >= extra };
}

it('backup and restore SIGKILLed in the middle lose nothing; the restored agent serves the same keys, ledger and devices', async (t) => {
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('backup-crash');
  let agent: ChildProcess | undefined;
  let serverUp = true;
  try {
    const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 1_000_000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]);
    const uids = [await createActiveKey(kms, port, 'backup-tape-key', [{ name: 'Usage Limits', value: limits }]), await createActiveKey(kms, port, 'backup-key-b'), await createActiveKey(kms, port, 'backup-key-c')];
    const deviceKey = addDevice(data, 'tape-1', ...uids);
    await makeSealedFixture(data, { devices: 3000, keys: 0, pushes: 0 });
    const mqtt = `mqtt://127.0.0.1:${broker.port}`;
    const run = () => startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', mqtt]);
    const sim = (...action: string[]) => runCli(['device-sim', '--id', 'tape-1', '--key', deviceKey, '--mqtt', mqtt, '--state', join(work, 'tape.counter'), ...action]);
    const served = (...action: string[]) => {
      const result = sim(...action);
      assert.equal(result.status, 0, `${action.join(' ')}: ${result.stdout} ${result.stderr}`);
      for (const line of result.stdout.trim().split('\n')) assert.equal((JSON.parse(line) as { ok: boolean }).ok, true, line);
    };

    agent = (await run()).child;
    for (const uid of uids) served('get', '--uid', uid);
    served('allocate', '--uid', uids[0]!, '--count', '4096', '--repeat', '3');
    served('get', '--uid', uids[1]!); // its counter's write is held back by the agent (replay-guard.ts)

    // While it runs: no rotation, no restore into its folder; the backup is the agent's.
    const rotate = runCli(['master-key', 'rotate', '--data', data]);
    assert.equal(rotate.status, 2);
    assert.match(rotate.stderr, /^kmip-edge: the agent on .* is running \(its store is locked\); stop it, rotate, then start it again\n$/);
    const backups = join(work, 'backups');
    mkdirSync(backups);
    const live = json(['backup', '--data', data, '--out', backups]) as { backup: string; records: number; source: string; masterKey: { included: boolean; fingerprint: string } };
    assert.equal(live.source, 'running agent');
    assert.equal(live.masterKey.included, false);
    assert.ok(live.records > 3000, `${live.records} records`);
    assert.equal(statSync(live.backup).mode & 0o777, 0o600);
    // The backup has the device's latest counter: a restored agent refuses a replay of any frame sent so far.
    const sent = BigInt(readFileSync(join(work, 'tape.counter'), 'utf8').trim().split(' ')[0]!);
    const counter = readBackup(live.backup).records.find(([k]) => k === counterKey('tape-1', 'up'))![1];
    assert.equal(new DataView(counter.buffer, counter.byteOffset).getBigUint64(0), sent);
    const intoRunning = runCli(['restore', '--data', data, '--from', live.backup, '--replace']);
    assert.equal(intoRunning.status, 2);
    assert.match(intoRunning.stderr, /^kmip-edge: the agent on .* is running \(its store is locked\); stop it, then restore\n$/);
    const liveAnswers = { ledger: json(['ledger', '--data', data, '--json']), devices: json(['device', 'list', '--data', data]) };

    // The agent SIGKILLed while it writes a backup: no partial file; it restarts with every device.
    const timed = await runUntilKilled(['backup', '--data', data, '--out', join(work, 'timed.kebak')], undefined);
    assert.equal(timed.code, 0, timed.stderr);
    let agentKills = 0;
    let midWrite = 0;
    for (let cycle = 0; cycle < 3; cycle++) {
      const out = join(work, `agent-killed-${cycle}.kebak`);
      const victim = agent;
      // Killed as soon as its temporary backup file is seen (polled), or at a random moment of a run.
      const writing = () => readdirSync(work).some((n) => n.startsWith(`.agent-killed-${cycle}.kebak.tmp-`));
      const at = cycle === 2 ? Math.floor(Math.random() * timed.ms) : undefined;
      const started = Date.now();
      let watching = true;
      const watch = (): void => {
        if (!watching) return;
        if (at === undefined ? writing() : Date.now() - started >= at) return void victim.kill('SIGKILL');
        setTimeout(watch, 1);
      };
      watch();
      const backup = await runUntilKilled(['backup', '--data', data, '--out', out], undefined);
      watching = false;
      if (writing()) midWrite++;
      // (exited() waits for an exit event that a process killed by a signal has already sent)
      if (victim.exitCode === null && victim.signalCode === null) {
        const gone = exited(victim);
        victim.kill('SIGKILL');
        await gone;
      }
      if (backup.code !== 0) agentKills++;
      if (existsSync(out)) assert.equal(backupDigest(out).records, live.records, 'a backup file there is whole');
      else assert.notEqual(backup.code, 0, 'no file, no success');
      t.diagnostic(`agent kill ${cycle}: backup ${backup.code === 0 ? 'finished first' : 'cut off'}; file ${existsSync(out) ? 'whole' : 'absent'}`);
      agent = (await run()).child;
      assert.deepEqual(json(['device', 'list', '--data', data]), liveAnswers.devices);
    }
    assert.equal(await terminate(agent), 0);
    agent = undefined;
    const stopped = { ledger: json(['ledger', '--data', data, '--json']), devices: json(['device', 'list', '--data', data]), cache: json(['cache', '--data', data, '--json']) };
    assert.deepEqual(stopped.ledger, liveAnswers.ledger);
    const source = await storeDigest(join(data, 'store'));

    // Backups of the stopped store, killed at random.
    const whole = await runUntilKilled(['backup', '--data', data, '--out', join(work, 'whole.kebak')], undefined);
    assert.equal(whole.code, 0, whole.stderr);
    assert.deepEqual(backupDigest(join(work, 'whole.kebak')), source);
    const backupStates = { absent: 0, midWrite: 0, whole: 0 };
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const out = join(work, `stopped-${cycle}.kebak`);
      const result = await runUntilKilled(['backup', '--data', data, '--out', out], killPoint(cycle, whole.ms, () => readdirSync(work).some((n) => n.startsWith(`.stopped-${cycle}.kebak.tmp-`))));
      if (existsSync(out)) {
        assert.deepEqual(backupDigest(out), source);
        backupStates.whole++;
      } else {
        assert.ok(result.killed, result.stderr);
        backupStates.absent++;
        if (readdirSync(work).some((n) => n.startsWith(`.stopped-${cycle}.kebak.tmp-`))) backupStates.midWrite++;
      }
      assert.deepEqual(await storeDigest(join(data, 'store')), source, 'the store is untouched');
    }
    t.diagnostic(`backup kills: ${JSON.stringify(backupStates)} (a whole run ${whole.ms} ms)`);
    json(['backup', '--data', data, '--out', join(work, 'after-kills.kebak')]);
    assert.deepEqual(readdirSync(work).filter((n) => n.includes('.kebak.tmp-')), [], 'a backup removes the partial files of killed runs');

    // Restores, killed at random; an interrupted one run again completes.
    const from = join(work, 'whole.kebak');
    const key = join(data, 'master.key');
    const restoreArgs = (target: string) => ['restore', '--data', target, '--from', from, '--master-key', key];
    const timedRestore = await runUntilKilled(restoreArgs(join(work, 'restore-timed')), undefined);
    assert.equal(timedRestore.code, 0, timedRestore.stderr);
    const restoreStates = { noStore: 0, midRestore: 0, whole: 0 };
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const target = join(work, `restore-${cycle}`);
      const result = await runUntilKilled(restoreArgs(target), killPoint(cycle, timedRestore.ms, () => existsSync(target) && readdirSync(target).some((n) => n.startsWith('.store.restore-'))));
      if (existsSync(join(target, 'store'))) {
        assert.deepEqual(await storeDigest(join(target, 'store')), source);
        assert.ok(readFileSync(join(target, 'master.key')).equals(readFileSync(key)));
        restoreStates.whole++;
      } else {
        assert.ok(result.killed, result.stderr);
        restoreStates.noStore++;
        if (existsSync(target) && readdirSync(target).some((n) => n.startsWith('.store.restore-'))) restoreStates.midRestore++;
        const again = runCli(restoreArgs(target));
        assert.equal(again.status, 0, again.stderr);
        assert.deepEqual(await storeDigest(join(target, 'store')), source);
      }
      assert.deepEqual(readdirSync(target).filter((n) => n.startsWith('.store.restore-')), [], 'no temporary store left');
    }
    t.diagnostic(`restore kills: ${JSON.stringify(restoreStates)} (a whole run ${timedRestore.ms} ms)`);
    const restoredCycle = join(work, `restore-${CYCLES - 1}`);
    assert.deepEqual(json(['ledger', '--data', restoredCycle, '--json']), stopped.ledger);
    assert.deepEqual(json(['device', 'list', '--data', restoredCycle]), stopped.devices);
    assert.deepEqual(json(['cache', '--data', restoredCycle, '--json']), stopped.cache);

    // The running agent's backup, restored, serves the same keys with the key server stopped.
    const restored = join(work, 'restored');
    const noKey = runCli(['restore', '--data', restored, '--from', live.backup]);
    assert.equal(noKey.status, 2);
    assert.match(noKey.stderr, /^kmip-edge: the backup does not hold its master key \(fingerprint [0-9a-f]{16}\); give the master key kept apart with --master-key FILE\n$/);
    const done = json(['restore', '--data', restored, '--from', live.backup, '--master-key', key]) as { records: number };
    assert.equal(done.records, live.records);
    assert.deepEqual(json(['ledger', '--data', restored, '--json']), liveAnswers.ledger);
    assert.deepEqual(json(['device', 'list', '--data', restored]), liveAnswers.devices);
    server.kill('SIGTERM');
    await exited(server);
    serverUp = false;
    const again = await startProcess(['run', '--data', restored, ...upstreamArgs(kms, port), '--mqtt', mqtt]);
    agent = again.child;
    assert.equal(again.ready.upstream, 'offline');
    for (const uid of uids) served('get', '--uid', uid);
    assert.deepEqual((json(['cache', '--data', restored, '--json']) as { keys: { uniqueIdentifier: string }[] }).keys.map((k) => k.uniqueIdentifier).sort(), [...uids].sort());
    assert.equal(await terminate(agent), 0);
    agent = undefined;
    t.diagnostic(`agent killed before its backup finished ${agentKills} of 3 times (${midWrite} with its temporary file half-written); ${live.records} records in the running agent's backup`);
  } finally {
    agent?.kill('SIGKILL');
    if (serverUp) server.kill('SIGTERM');
    await broker.stop();
  }
});
