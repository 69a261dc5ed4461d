/**
 * The ledger on a full disk (issue #13.2), LevelDB on a real 2 MB tmpfs: a new grant is refused
 * with STORE_FULL before anything is debited or asked of the upstream (units it granted could not
 * be recorded); a retried grant is still answered from its record; once space is back grants
 * resume, and across a reopen the totals equal the grant records — nothing debited undelivered.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { Ledger } from '../../src/agent/ledger.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { mountTmpfs } from '../helpers/tmpfs.ts';
import { until } from '../helpers/until.ts';

it('full disk: new grants refused before debiting, no upstream call; retries answered; recovery; totals = records', async () => {
  const fs = mountTmpfs(2 * 1024 * 1024);
  const path = join(fs.dir, 'store');
  let store = await LevelStore.open(path, { probeMs: 20, headroomBytes: 256 * 1024 });
  const calls: bigint[] = [];
  const allocate = async (_uid: string, count: bigint) => void calls.push(count);
  try {
    let ledger = new Ledger({ store, allocate, minChunk: 10n, maxChunk: 10n, lowWaterChunks: 0 });
    const first = await ledger.grant('k', 'dev', 'r1', 4n);
    fs.fill();
    // Grant until the disk says no: that grant and all after it are STORE_FULL.
    const delivered = new Map<string, bigint>([['r1', 4n]]);
    let refusedAt = 0;
    for (let i = 2; refusedAt === 0 && i < 100_000; i++) {
      try {
        await ledger.grant('k', 'dev', `r${i}`, 4n);
        delivered.set(`r${i}`, 4n);
      } catch (error) {
        assert.equal((error as { code?: string }).code, 'STORE_FULL', String(error));
        refusedAt = i;
      }
    }
    assert.ok(refusedAt > 0);
    const callsWhenFull = calls.length;
    for (let i = 0; i < 5; i++) await assert.rejects(ledger.grant('k', 'dev', `full-${i}`, 4n), { code: 'STORE_FULL' });
    await assert.rejects(ledger.grant('k', 'dev', 'big', 1000n), { code: 'STORE_FULL' }, 'no refill is even tried');
    assert.equal(calls.length, callsWhenFull, 'nothing asked of the upstream while nothing can be recorded');
    assert.deepEqual(await ledger.grant('k', 'dev', 'r1', 4n), first, 'a retried grant is answered from its record');

    fs.free();
    await until(() => store.writable, 'writable again', 10_000);
    await ledger.grant('k', 'dev', 'after', 4n);
    delivered.set('after', 4n);

    await store.close();
    store = await LevelStore.open(path);
    ledger = new Ledger({ store, allocate, minChunk: 10n, maxChunk: 10n });
    const records = await ledger.grants('k');
    assert.deepEqual(new Map(records.map((r) => [r.requestId, r.count])), delivered, 'the grant records are exactly the grants answered');
    assert.equal((await ledger.totals('k')).grantedToDevices, [...delivered.values()].reduce((a, b) => a + b, 0n), 'totals = records');
  } finally {
    await store.close();
    fs.unmount();
  }
});
