/**
 * `kmip-edge master-key rotate` SIGKILLed in the middle, again and again (issue #15.3): real child
 * processes from the built bundle, on a store holding every sealed record kind (2,000 devices,
 * 2,000 cached keys, 200 push outbox entries, made through their owners). Each cycle: a rotation
 * is killed at a random moment — half at a random moment after master.key.next appears (re-sealing under way),
 * half after a random delay within the length of a whole run — and then:
 *   - every sealed record opens, with its original plaintext, under master.key or master.key.next;
 *     none lost, none extra;
 *   - while master.key.next is there, MasterKey.load refuses (no agent starts with half the records
 *     under another key);
 *   - `rotate` run again finishes (resuming when it was interrupted): every record opens under the
 *     current master.key, master.key.next is gone, and the key from before the cycle opens nothing.
 * At the end the records are read through their owners (registry, key cache) with the final key.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { KeyCache } from '../../src/agent/key-cache.ts';
import { DeviceRegistry } from '../../src/devices/registry.ts';
import { isKmipEdgeError } from '../../src/errors.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { MasterKey } from '../../src/store/master-key.ts';
import { runCli } from '../helpers/cli.ts';
import { checkSealed, makeSealedFixture } from '../store/sealed-fixture.ts';
import { runUntilKilled } from './kill-points.ts';

const CYCLES = 16;

it(`${CYCLES} SIGKILLed rotations: every record readable under the current key after each kill and resume, nothing lost, the old key gone`, async (t) => {
  const data = mkdtempSync(join(tmpdir(), 'kmip-edge-rotation-crash-'));
  const fixture = await makeSealedFixture(data, { devices: 2000, keys: 2000, pushes: 10 });
  const total = fixture.plaintexts.size;
  t.diagnostic(`${total} sealed records: ${fixture.devices.size} devices, ${fixture.keys.size} keys, ${fixture.outbox} outbox entries`);
  assert.equal(fixture.outbox, 200);
  const keyFile = join(data, 'master.key');
  const nextFile = `${keyFile}.next`;
  const env = { ...process.env };
  delete env.KMIP_EDGE_MASTER_KEY;

  // A whole run first: how long one takes, so kills can land anywhere in it.
  const first = runCli(['master-key', 'rotate', '--data', data]);
  assert.equal(first.status, 0, first.stderr);
  const whole = JSON.parse(first.stdout) as { records: number; resealed: number };
  assert.deepEqual([whole.records, whole.resealed], [total, total]);
  const timed = await runUntilKilled(['master-key', 'rotate', '--data', data], undefined);
  assert.equal(timed.code, 0, timed.stderr);
  t.diagnostic(`an uninterrupted rotation of ${total} records: ${timed.ms} ms (process start included)`);

  const states = { beforeNextKey: 0, midResealing: 0, finished: 0 };
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const before = MasterKey.read(keyFile);
    // Even cycles: once the next key is on disk, then a random part of a run's length more; odd: anywhere in a run.
    let seenAt: number | undefined;
    const extra = Math.random() * timed.ms / 2;
    const kill = cycle % 2 === 0 ? { when: () => (seenAt ??= existsSync(nextFile) ? Date.now() : undefined) !== undefined && Date.now() - seenAt >= extra } : { afterMs: Math.floor(Math.random() * timed.ms) };
    const run = await runUntilKilled(['master-key', 'rotate', '--data', data], kill);
    if (!run.killed) assert.equal(run.code, 0, run.stderr);

    const pending = existsSync(nextFile);
    const keys = pending ? [MasterKey.read(keyFile), MasterKey.read(nextFile)] : [MasterKey.read(keyFile)];
    const opened = await checkSealed(data, fixture, keys);
    if (pending) {
      states.midResealing++;
      assert.throws(() => MasterKey.load(keyFile, undefined), (error) => isKmipEdgeError(error, 'MASTER_KEY_ROTATING'));
    } else if (Buffer.from(readFileSync(keyFile)).equals(Buffer.from(before.exportBytes()))) states.beforeNextKey++;
    else states.finished++;
    t.diagnostic(`cycle ${cycle}: ${run.killed ? `killed at ${run.ms} ms` : 'ran to its end'}; ${pending ? `rotation pending, ${opened[0]} records under the old key, ${opened[1]} under the next` : 'no rotation pending'}`);

    const resume = runCli(['master-key', 'rotate', '--data', data]);
    assert.equal(resume.status, 0, resume.stderr);
    assert.equal((JSON.parse(resume.stdout) as { resumed: boolean }).resumed, pending);
    assert.ok(!existsSync(nextFile), 'no next key once finished');
    // Every record under the current key, and the key from before the cycle opens none.
    assert.deepEqual(await checkSealed(data, fixture, [MasterKey.read(keyFile), before]), [total, 0]);
  }
  t.diagnostic(`kills: ${JSON.stringify(states)}`);
  assert.equal(states.beforeNextKey + states.midResealing + states.finished, CYCLES);

  // Through the owners, with the key the agent would load now.
  const store = await LevelStore.open(join(data, 'store'));
  try {
    const masterKey = MasterKey.load(keyFile, undefined);
    const registry = new DeviceRegistry(store, masterKey);
    for (const [id, key] of fixture.devices) assert.equal(Buffer.from((await registry.get(id))!.key).toString('hex'), key);
    const cache = new KeyCache(store, masterKey, { get: () => Promise.reject(new Error('offline')), getAttributes: () => Promise.reject(new Error('offline')), obtainLease: () => Promise.reject(new Error('offline')) });
    for (const [uid, material] of fixture.keys) assert.equal(Buffer.from((await cache.cached(uid))!.material).toString('hex'), material);
  } finally {
    await store.close();
  }
});
