/**
 * `kmip-edge demo` not on a terminal (a pipe, as in CI): every stage happens, each with its real
 * effect read from the --events log (JSON lines) — units drawn shown by the agent's ledger, the
 * Put Replace acknowledged and relayed, offline serving from the cache and the allocation the
 * agent holds while the upstream is shown offline, refills resumed once the key server is back.
 * Also: --seconds bounds it, bad flags are usage errors, and --keep DIR leaves a setup that
 * `kmip-edge status --data DIR/agent` talks to until SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT, runCli } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-demo-test-'));
type Event = { t: string; stage: string; event: string; text: string } & Record<string, any>;
const readEvents = (path: string): Event[] => readFileSync(path, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Event);

describe('kmip-edge demo, not on a terminal', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('every stage happens, each with its effect in the --events log', () => {
    const log = join(dir, 'events.jsonl');
    const run = runCli(['demo', '--events', log, '--seconds', '50']);
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /demo complete: keys, encrypt, put-replace, notify, offline, online\n$/);
    const events = readEvents(log);
    const ready = events.find((e) => e.event === 'ready')!;
    assert.ok(ready, 'setup ready');
    assert.equal(existsSync(ready.dir as string), false, 'the temporary folder is removed');
    // the stages, in order
    assert.deepEqual(events.filter((e) => e.event === 'stage').map((e) => e.stage), ['keys', 'encrypt', 'put-replace', 'notify', 'offline', 'online']);
    const of = (stage: string, event: string) => events.filter((e) => e.stage === stage && e.event === event);

    // keys: served and identical to the key server's; end-to-end nonce-MAC verified at the device; allow-list enforced
    assert.deepEqual(of('keys', 'get').map((e) => [e.served, e.sameAsServer]), [[true, true]]);
    assert.equal(of('keys', 'nonce-mac')[0]!.verified, true);
    assert.equal(of('keys', 'refused')[0]!.served, false);

    // encrypt: each chunk's units show in the ledger's granted total, never more than the upstream allocated
    const chunks = of('encrypt', 'chunk');
    assert.equal(chunks.length, 6);
    for (const c of chunks) {
      assert.equal(c.served, true);
      assert.equal(BigInt(c.after.grantedToDevices) - BigInt(c.before.grantedToDevices), BigInt(c.count), c.text);
      assert.ok(BigInt(c.after.grantedToDevices) <= BigInt(c.after.allocatedFromUpstream), c.text);
    }
    assert.equal(of('encrypt', 'drawn')[0]!.ledgerGranted, '6144');
    assert.ok(of('encrypt', 'refill').length >= 1, 'the ledger refilled from the key server');

    // put-replace: acknowledged by the agent and relayed to the drive; the new key is drawn from next
    const put = of('put-replace', 'put')[0]!;
    assert.equal(put.acknowledged, true);
    assert.equal(put.relayed, true);
    assert.notEqual(put.new, put.old);
    const afterPut = of('put-replace', 'chunk')[0]!;
    assert.equal(afterPut.uid, put.new);
    assert.equal(afterPut.served, true);
    assert.equal(of('notify', 'notify')[0]!.acknowledged, true);

    // offline: the cache serves the key; chunks come out of the allocation the agent holds (remaining
    // drains, nothing allocated upstream), and the agent's status says the upstream is offline
    assert.equal(of('offline', 'cut').length, 1);
    assert.equal(of('offline', 'get')[0]!.served, true);
    const offline = of('offline', 'chunk');
    const served = offline.filter((c) => c.served);
    assert.ok(served.length >= 2, 'chunks served offline');
    for (const c of offline) {
      assert.equal(c.link, 'cut');
      assert.equal(c.after.allocatedFromUpstream, c.before.allocatedFromUpstream, 'no refill while the key server is away');
      if (c.served) assert.equal(BigInt(c.before.remaining) - BigInt(c.after.remaining), BigInt(c.count));
    }
    assert.equal(of('offline', 'refill').length, 0);
    assert.equal(of('offline', 'offline-serving')[0]!.upstream, 'offline');

    // online: the ledger refills from the key server again, and the upstream is shown online
    assert.equal(of('online', 'restored').length, 1);
    const refill = of('online', 'refill');
    assert.ok(refill.length >= 1 && BigInt(refill[0]!.to) > BigInt(refill[0]!.from), 'a refill after the key server came back');
    const resumed = of('online', 'refills-resumed')[0]!;
    assert.equal(resumed.refilled, true);
    assert.equal(resumed.upstream, 'online');
    const done = events.at(-1)!;
    assert.equal(done.event, 'done');
    assert.equal(done.ok, true);
    assert.deepEqual(done.problems, []);
  });

  it('--seconds ends it before the stages are done: exit 1 and what was not done; bad flags exit 2', () => {
    const log = join(dir, 'short.jsonl');
    const run = runCli(['demo', '--seconds', '1', '--pace', '400', '--events', log]);
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /demo stopped after 1 s before it finished \(.*online not done\)\n$/);
    const done = readEvents(log).at(-1)!;
    assert.equal(done.ok, false);
    assert.ok(!done.stagesCompleted.includes('online'));
    for (const args of [['--seconds', 'x'], ['--pace', '0'], ['--colour']]) {
      const bad = runCli(['demo', ...args]);
      assert.equal(bad.status, 2, args.join(' '));
      assert.match(bad.stderr, /^kmip-edge: .*\n$/);
    }
    writeFileSync(join(dir, 'not-empty'), 'x');
    const busy = runCli(['demo', '--keep', dir]);
    assert.equal(busy.status, 2);
    assert.match(busy.stderr, /the folder is not empty; give a new or empty folder/);
  });

  it('SIGINT during the setup: everything it started is closed and its folder removed, exit 0', async () => {
    const tmp = mkdtempSync(join(dir, 'tmp-'));
    const log = join(dir, 'early.jsonl');
    const child = spawn(process.execPath, [`${ROOT}dist/kmip-edge.mjs`, 'demo', '--events', log], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp } });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      // the event log is created once the signal handlers are in place; the setup takes a while longer
      const deadline = Date.now() + 30_000;
      while ((!existsSync(log) || readdirSync(tmp).length === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.equal(readFileSync(log, 'utf8'), '', 'still setting up');
      child.kill('SIGINT');
      assert.equal(await exited, 0, stdout);
      assert.match(stdout, /demo stopped by signal before it finished \(keys, encrypt, put-replace, notify, offline, online not done\)\n$/);
      assert.deepEqual(readdirSync(tmp), [], 'its temporary folder is removed');
      assert.equal(readEvents(log).at(-1)!.ok, false);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('--keep DIR: the setup stays up after the stages; status --data DIR/agent answers; SIGTERM stops it, exit 0', async () => {
    const keep = join(dir, 'kept');
    const child = spawn(process.execPath, [`${ROOT}dist/kmip-edge.mjs`, 'demo', '--keep', keep, '--pace', '20'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 60_000;
      while (!stdout.includes('the demo keeps running in') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.match(stdout, new RegExp(`the demo keeps running in ${keep} \\(pid ${child.pid}\\)`));
      assert.match(stdout, new RegExp(`kmip-edge status --data ${keep}/agent\\n`));
      assert.match(stdout, /kmip-edge device-sim --id my-sensor --key-file my-sensor\.key --mqtt mqtt:\/\/127\.0\.0\.1:\d+ get --uid \S+/);
      const status = runCli(['status', '--data', join(keep, 'agent'), '--json']);
      assert.equal(status.status, 0, status.stderr);
      const answer = JSON.parse(status.stdout) as { pid: number; upstream: { state: string }; devices: { id: string; lastSeen: string | null }[]; keys: { names: string[]; remaining: number | null }[] };
      assert.equal(answer.pid, child.pid);
      assert.equal(answer.upstream.state, 'online');
      assert.deepEqual(answer.devices.map((d) => d.id).sort(), ['sensor-1', 'tape-drive-7']);
      assert.ok(answer.devices.every((d) => d.lastSeen !== null));
      assert.ok(answer.keys.some((k) => k.names.includes('tape-key') && k.remaining !== null));
      // the printed device commands work as printed: a new device provisioned, then served over the demo's broker
      const sim = /kmip-edge device-sim --id my-sensor --key-file my-sensor\.key --mqtt (\S+) get --uid (\S+)/.exec(stdout)!;
      assert.match(stdout, new RegExp(`kmip-edge device add --data ${keep}/agent --id my-sensor --key-uid ${sim[2]} > my-sensor\\.json`));
      const added = runCli(['device', 'add', '--data', join(keep, 'agent'), '--id', 'my-sensor', '--key-uid', sim[2]!]);
      assert.equal(added.status, 0, added.stderr);
      writeFileSync(join(dir, 'my-sensor.key'), (JSON.parse(added.stdout) as { key: string }).key, { mode: 0o600 });
      const got = runCli(['device-sim', '--id', 'my-sensor', '--key-file', join(dir, 'my-sensor.key'), '--mqtt', sim[1]!, '--state', join(dir, 'my-sensor.counter'), 'get', '--uid', sim[2]!]); // its counter file here, not in the repository
      assert.equal(got.status, 0, got.stderr);
      assert.equal((JSON.parse(got.stdout) as { ok: boolean }).ok, true);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stdout);
      assert.match(stdout, /demo complete: .*; stopped by signal\n$/);
      assert.ok(existsSync(join(keep, 'agent')), '--keep leaves the folder');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
