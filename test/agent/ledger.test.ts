/** The usage-allocation ledger on LevelDB on disk, with a scripted upstream (unit level). */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Ledger } from '../../src/agent/ledger.ts';
import { LevelStore } from '../../src/store/kv-store.ts';

/** An upstream with `units` to hand out; records every request; can be made to fail. */
function upstream(units: bigint) {
  const calls: bigint[] = [];
  let left = units;
  let down = false;
  return {
    calls,
    setDown: (value: boolean) => void (down = value),
    allocate: async (_uid: string, count: bigint) => {
      calls.push(count);
      if (down) throw new Error('upstream unreachable');
      if (count > left) throw new Error('Permission Denied: Unable to allocate requested amount');
      left -= count;
    },
  };
}

async function withLedger(units: bigint, test: (ledger: Ledger, up: ReturnType<typeof upstream>, reopen: () => Promise<Ledger>) => Promise<void>, options: Partial<ConstructorParameters<typeof Ledger>[0]> = {}): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-ledger-'));
  const up = upstream(units);
  let store = await LevelStore.open(dir);
  const make = () => new Ledger({ store, allocate: up.allocate, minChunk: 10n, maxChunk: 100n, ...options });
  try {
    await test(make(), up, async () => {
      await store.close();
      store = await LevelStore.open(dir);
      return make();
    });
  } finally {
    await store.close();
  }
}

describe('Ledger', () => {
  it('grants from small upstream chunks and keeps device grants within what the upstream granted', async () => {
    await withLedger(1000n, async (ledger, up) => {
      await ledger.grant('k', 'dev-a', 'r1', 5n);
      assert.deepEqual(up.calls.slice(0, 1), [10n], 'the first refill is the minimum chunk');
      for (let i = 2; i <= 20; i++) await ledger.grant('k', 'dev-a', `r${i}`, 5n);
      const totals = await ledger.totals('k');
      assert.equal(totals.grantedToDevices, 100n);
      assert.ok(totals.allocatedFromUpstream >= 100n && totals.allocatedFromUpstream <= 100n + 100n);
      assert.ok(up.calls.every((c) => c <= 100n), 'chunks stay within maxChunk');
    });
  });

  it('a retried request gets the same grant and is not counted twice, also after a restart', async () => {
    await withLedger(1000n, async (ledger, _up, reopen) => {
      const first = await ledger.grant('k', 'dev-a', 'req-7', 3n);
      const again = await ledger.grant('k', 'dev-a', 'req-7', 3n);
      assert.deepEqual(again, first);
      const [x, y] = await Promise.all([ledger.grant('k', 'dev-b', 'req-1', 4n), ledger.grant('k', 'dev-b', 'req-1', 4n)]);
      assert.deepEqual(x, y);
      assert.equal((await ledger.totals('k')).grantedToDevices, 7n);
      const after = await reopen();
      assert.deepEqual(await after.grant('k', 'dev-a', 'req-7', 3n), first);
      assert.equal((await after.totals('k')).grantedToDevices, 7n);
      assert.equal((await after.grants('k')).length, 2);
    });
  });

  it('many concurrent requesters: every grant durable, the sum of records equals the total', async () => {
    await withLedger(100_000n, async (ledger, _up, reopen) => {
      const results = await Promise.all(Array.from({ length: 300 }, (_, i) => ledger.grant('k', `dev-${i % 17}`, `r${i}`, BigInt(1 + (i % 5)))));
      const expected = results.reduce((sum, r) => sum + r.count, 0n);
      const after = await reopen();
      const records = await after.grants('k');
      assert.equal(records.length, 300);
      assert.equal(records.reduce((sum, r) => sum + r.count, 0n), expected);
      const totals = await after.totals('k');
      assert.equal(totals.grantedToDevices, expected);
      assert.ok(totals.grantedToDevices <= totals.allocatedFromUpstream);
    });
  });

  it('when the upstream cannot grant: LEDGER_INSUFFICIENT, nothing recorded; grants resume when it can', async () => {
    await withLedger(12n, async (ledger, up) => {
      await ledger.grant('k', 'd', 'r1', 10n);
      await assert.rejects(ledger.grant('k', 'd', 'r2', 5n), (e: unknown) => (e as { code?: string }).code === 'LEDGER_INSUFFICIENT');
      assert.equal((await ledger.totals('k')).grantedToDevices, 10n);
      up.setDown(true);
      await assert.rejects(ledger.grant('k', 'd', 'r3', 1n), /upstream unreachable/);
      up.setDown(false);
      const record = await ledger.grant('k', 'd', 'r3', 1n); // a full chunk is refused, 1 unit is not
      assert.equal(record.count, 1n);
      assert.ok(up.calls.includes(1n), `asked ${up.calls.join(', ')}`);
      assert.deepEqual(await ledger.totals('k'), { allocatedFromUpstream: 11n, grantedToDevices: 11n });
    });
  });

  it('an upstream allocation whose outcome is unknown counts as not granted', async () => {
    let granted = 0n;
    const store = await LevelStore.open(mkdtempSync(join(tmpdir(), 'kmip-edge-ledger-')));
    try {
      const ledger = new Ledger({
        store,
        minChunk: 10n,
        allocate: async (_uid, count) => {
          granted += count; // the server did grant…
          throw Object.assign(new Error('connection dropped after sending'), { code: 'KMIP_OUTCOME_UNKNOWN' });
        },
      });
      await assert.rejects(ledger.grant('k', 'd', 'r', 1n));
      assert.equal(granted, 10n);
      assert.deepEqual(await ledger.totals('k'), { allocatedFromUpstream: 0n, grantedToDevices: 0n });
    } finally {
      await store.close();
    }
  });
});
