/**
 * Crash test of offline Create (issue #16 "Crash") with real processes: a child takes pooled keys
 * as fast as its pool refills while its sync drains the outbox to the development server (a
 * process of its own), and is SIGKILLed again and again at random points — after a delay, just
 * after a take's durable write (before or after its answer), or just after a write upstream
 * (before the outbox entry is deleted). After each kill, with the child gone, the store and the
 * key server are checked:
 * - no key handed out twice (the ack log, across all runs), none both pooled and taken;
 * - every answered take is pending in the outbox or on the key server: nothing pending lost;
 * - every Name on the key server at most once, on one object, and no object with two takes' Names.
 * At the end a child drains the outbox: every answered Name is on its key exactly once.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { Outbox } from '../../src/edge/outbox.ts';
import { nameText } from '../../src/edge/outbox.ts';
import { POOL_KEYS, POOL_TAKEN } from '../../src/edge/key-pool.ts';
import { dataDir } from '../../src/agent/data-dir.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import type { KmipClient } from '../../src/upstream/client.ts';
import { ROOT } from '../helpers/cli.ts';
import { adminClient, startKeyServer, terminate } from '../helpers/processes.ts';

const RUNS = 12;

type Kill = { afterMs: number } | { onEvent: string; nth: number };

interface Outcome {
  killed: boolean;
  code: number | null;
  stderr: string;
  /** The events seen before the kill (their `event` names). */
  events: string[];
}

/** Runs the child; SIGKILLs it after a delay or as soon as the nth `onEvent` log line arrives. */
function runChild(args: string[], kill: Kill | undefined): Promise<Outcome> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/crash/key-pool-child.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let buffered = '';
  let seen = 0;
  let killed = false;
  const events: string[] = [];
  const killNow = (): void => {
    if (child.exitCode === null && child.signalCode === null) killed = child.kill('SIGKILL');
  };
  const bound = setTimeout(killNow, 120_000);
  let timer: NodeJS.Timeout | undefined;
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      const parsed = JSON.parse(line) as { event?: string; ready?: boolean };
      if (parsed.ready && kill && 'afterMs' in kill) timer = setTimeout(killNow, kill.afterMs);
      if (parsed.event === undefined) continue;
      events.push(parsed.event);
      if (kill && 'onEvent' in kill && parsed.event === kill.onEvent && ++seen === kill.nth) killNow();
    }
  });
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      clearTimeout(bound);
      clearTimeout(timer);
      resolve({ killed, code, stderr, events });
    });
  });
}

function randomKill(): Kill {
  const choice = Math.floor(Math.random() * 3);
  if (choice === 0) return { afterMs: 100 + Math.floor(Math.random() * 500) };
  // Just after a take's synced batch: before its answer (the ack), or before its drain.
  if (choice === 1) return { onEvent: 'pool_key_taken', nth: 1 + Math.floor(Math.random() * 12) };
  // Just after a write reached the key server: before the entry is deleted.
  return { onEvent: 'outbox_written', nth: 1 + Math.floor(Math.random() * 12) };
}

interface Acked {
  uid: string;
  name: string;
}

function readAcks(path: string): Acked[] {
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Acked) : [];
}

/** Every object on the key server with the test's Names: object → its crash Names (with repeats). */
async function namesUpstream(admin: KmipClient): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const uid of await admin.locateAll()) {
    const names = (await admin.getAttributes(uid, ['Name'])).attributes.map(nameText).filter((n): n is string => n?.startsWith('crash-') === true);
    if (names.length > 0) out.set(uid, names);
  }
  return out;
}

/** The child's store, opened while it is dead: pooled uids, taken uids, outbox entries. */
async function readStore(data: string): Promise<{ pooled: Set<string>; taken: Set<string>; pending: Map<string, string[]>; conflicted: number }> {
  const store = await LevelStore.open(dataDir(data).store);
  try {
    const pooled = new Set<string>();
    for await (const [, value] of store.entries(POOL_KEYS)) pooled.add((JSON.parse(Buffer.from(value).toString()) as { uid: string }).uid);
    const taken = new Set<string>();
    for await (const [key] of store.entries(POOL_TAKEN)) taken.add(decodeURIComponent(key.slice(POOL_TAKEN.length)));
    const refuse = (): never => { throw new Error('the checker writes nothing'); };
    const outbox = await Outbox.load({ store, cache: { applyNotify: refuse }, upstream: refuse });
    const pending = new Map(outbox.views().map((view) => [view.uid, view.names]));
    return { pooled, taken, pending, conflicted: outbox.conflicts().length };
  } finally {
    await store.close();
  }
}

function check(run: number, acked: Acked[], state: Awaited<ReturnType<typeof readStore>>, upstream: Map<string, string[]>): void {
  const where = `run ${run}`;
  const uids = acked.map((a) => a.uid);
  assert.equal(new Set(uids).size, uids.length, `${where}: a key was handed out twice`);
  for (const uid of state.pooled) {
    assert.ok(!state.taken.has(uid) && !state.pending.has(uid), `${where}: ${uid} is both pooled and taken`);
    assert.ok(!uids.includes(uid), `${where}: ${uid} was handed out and is pooled again`);
  }
  assert.equal(state.conflicted, 0, `${where}: unique names cannot conflict`);
  const holder = new Map<string, string>();
  for (const [uid, names] of upstream) {
    assert.equal(names.length, 1, `${where}: ${uid} holds ${names.join(', ')} (two takes of one key, or one Name written twice)`);
    assert.ok(!holder.has(names[0]!), `${where}: ${names[0]} is on ${holder.get(names[0]!)} and on ${uid}`);
    holder.set(names[0]!, uid);
  }
  for (const { uid, name } of acked) {
    const pending = state.pending.get(uid);
    assert.ok((pending !== undefined && pending.includes(name)) || holder.get(name) === uid, `${where}: answered take ${uid} (${name}) is neither pending nor on the key server: lost`);
  }
}

it(`${RUNS} SIGKILLs at random points of takes and drains: no key handed out twice, every Name on the key server exactly once, nothing pending lost`, async (t) => {
  const { work, kms, data, port, server } = await startKeyServer('key-pool-crash');
  const ackLog = join(work, 'acked.jsonl');
  const admin = adminClient(kms, port);
  try {
    const args = (mode: string) => [mode, data, kms, String(port), ackLog];
    const kinds = new Map<string, number>();
    for (let run = 1; run <= RUNS; run++) {
      const kill = randomKill();
      const outcome = await runChild(args('take'), kill);
      assert.ok(outcome.killed, `run ${run}: the child ended by itself (${outcome.code}): ${outcome.stderr}`);
      const kind = 'afterMs' in kill ? 'after a delay' : `after ${kill.onEvent}`;
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      const acked = readAcks(ackLog);
      const state = await readStore(data);
      check(run, acked, state, await namesUpstream(admin));
      t.diagnostic(`run ${run}: killed ${kind}${'nth' in kill ? ` #${kill.nth}` : ` ${kill.afterMs} ms`}; ${acked.length} answered so far, ${state.pending.size} pending, ${state.pooled.size} pooled, ${outcome.events.filter((e) => e === 'outbox_drained').length} drained this run`);
    }
    const final = await runChild(args('drain'), undefined);
    assert.equal(final.code, 0, final.stderr);
    const acked = readAcks(ackLog);
    const state = await readStore(data);
    const upstream = await namesUpstream(admin);
    check(RUNS + 1, acked, state, upstream);
    assert.equal(state.pending.size, 0, 'the outbox drained');
    const holder = new Map([...upstream].map(([uid, names]) => [names[0]!, uid]));
    for (const { uid, name } of acked) assert.equal(holder.get(name), uid, `${name} on ${uid}`);
    assert.ok(acked.length > RUNS, 'the child got work done between kills');
    t.diagnostic(`kill points: ${[...kinds].map(([k, n]) => `${k} ×${n}`).join(', ')}; ${acked.length} answered takes; ${upstream.size} Names on the key server, ${upstream.size - acked.length} of them of takes killed between their durable write and their answer`);
  } finally {
    await admin.close();
    await terminate(server);
  }
});
