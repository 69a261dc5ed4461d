/**
 * src/memory-settler.ts on this process's real V8 heap: after a burst leaves the heap holding far
 * more than is alive, a quiet event loop gets one compacting collection (memory_compacted, the
 * committed heap smaller afterwards); a busy loop gets none until it is quiet again.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { it } from 'node:test';
import { getHeapStatistics } from 'node:v8';
import { createLogger } from '../../src/log.ts';
import { startMemorySettler } from '../../src/memory-settler.ts';
import { until } from '../helpers/until.ts';

const MB = 2 ** 20;

/** ~`megabytes` of objects kept alive long enough to reach the old generation, then dropped. */
function burst(megabytes: number): void {
  let kept: { index: number; text: string }[][] = [];
  for (let block = 0; block < megabytes * 8; block++) kept.push(Array.from({ length: 1000 }, (_, index) => ({ index, text: `x${block}-${index}` })));
  kept = [];
  void kept;
}

function logged(): { log: ReturnType<typeof createLogger>; events: Record<string, unknown>[] } {
  const events: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk: Buffer, _encoding, done) { events.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });
  return { log: createLogger({ level: 'debug' }, sink), events };
}

function busyFor(ms: number): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve) => {
    const spin = () => {
      const slice = Date.now() + 20;
      while (Date.now() < slice); // the loop is working, as under a flood of requests
      if (Date.now() < end) setImmediate(spin);
      else resolve();
    };
    spin();
  });
}

it('quiet after a burst: one compacting collection, the committed heap given back', { timeout: 60_000 }, async () => {
  burst(60);
  const before = getHeapStatistics();
  assert.ok(before.total_heap_size - before.used_heap_size >= 16 * MB, `the burst left ${Math.round((before.total_heap_size - before.used_heap_size) / MB)} MB of slack`);
  const { log, events } = logged();
  const settler = await startMemorySettler({ log, checkEveryMs: 200, minSlackBytes: 16 * MB });
  try {
    await until(() => settler.compactions >= 1, 'a compaction', 30_000);
    const after = getHeapStatistics();
    assert.ok(after.total_heap_size < before.total_heap_size - 16 * MB, `heap ${Math.round(before.total_heap_size / MB)} → ${Math.round(after.total_heap_size / MB)} MB`);
    const compacted = events.find((e) => e.event === 'memory_compacted');
    assert.ok(compacted && (compacted.heapAfterMb as number) < (compacted.heapBeforeMb as number), JSON.stringify(events));
    // Nothing more to give back: no second collection while the agent stays quiet.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(settler.compactions, 1);
  } finally {
    settler.stop();
  }
});

it('a busy event loop is never interrupted by a collection; once quiet, it is', { timeout: 60_000 }, async () => {
  burst(60);
  const { log } = logged();
  const settler = await startMemorySettler({ log, checkEveryMs: 200, minSlackBytes: 16 * MB });
  try {
    await busyFor(2000);
    assert.equal(settler.compactions, 0, 'compacted while the loop was busy');
    await until(() => settler.compactions >= 1, 'a compaction once quiet', 30_000);
  } finally {
    settler.stop();
  }
});
