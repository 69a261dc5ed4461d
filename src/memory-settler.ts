/**
 * Gives the memory of a burst back once the agent is quiet again (issue #15: RSS on a gateway).
 *
 * V8 sizes its heap by the allocation rate it sees: filling the cache (10,000 keys fetched through
 * MQTT, the device protocol and the upstream client in a few seconds) grows the young generation to
 * its 32 MB maximum and the old generation to several times what stays alive, and it only gives
 * pages back at a later full collection. An agent is quiet after such a burst — nothing allocates,
 * so no collection ever comes, and V8's own memory reducer does not act here (measured: RSS stayed
 * 146.8 MB for 40 s after the fill, while a full collection brings it to 87 MB).
 *
 * So: every `checkEveryMs`, if the event loop was nearly idle over the last interval (event loop
 * utilisation below `quietUtilization`) and the heap holds at least `minSlackBytes` more than is in
 * use, one full collection with compaction is asked for through the in-process inspector session
 * (HeapProfiler.collectGarbage, the same collection as V8's low-memory notification: it also
 * shrinks the young generation). The pause is that of one full collection of the live heap (tens
 * of milliseconds at 10,000 keys), and only ever when nothing is waiting. Under steady load the
 * loop is not idle and V8's normal policy applies.
 */
import type { Session } from 'node:inspector';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { Logger } from './log.ts';

export interface MemorySettlerOptions {
  log: Logger;
  checkEveryMs?: number;
  /** Event loop utilisation (0…1) over an interval below which the agent counts as quiet. */
  quietUtilization?: number;
  /** Committed heap beyond the used heap worth a collection. */
  minSlackBytes?: number;
}

export interface MemorySettler {
  /** Collections run so far. */
  readonly compactions: number;
  stop(): void;
}

const MB = 2 ** 20;

export async function startMemorySettler(options: MemorySettlerOptions): Promise<MemorySettler> {
  const checkEveryMs = options.checkEveryMs ?? 5000;
  const quietUtilization = options.quietUtilization ?? 0.02;
  const minSlackBytes = options.minSlackBytes ?? 16 * MB;
  let session: Session;
  try {
    // Loaded here, not imported statically: a Node built without the inspector (Debian's and the
    // official builds have it) refuses to load node:inspector, and must still run the agent.
    session = new (await import('node:inspector')).Session();
    session.connect();
  } catch (error) {
    // V8's policy alone then — never a reason for the agent to stop serving.
    options.log.info({ event: 'memory_settler_unavailable', reason: (error as Error).message }, 'no in-process inspector: the heap is not compacted after bursts');
    return { compactions: 0, stop() {} };
  }
  let compactions = 0;
  let running = false;
  let last: EventLoopUtilization = performance.eventLoopUtilization();

  const check = () => {
    const now = performance.eventLoopUtilization();
    const utilization = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    if (running || utilization >= quietUtilization) return;
    const before = getHeapStatistics();
    if (before.total_heap_size - before.used_heap_size < minSlackBytes) return; // nothing worth giving back
    running = true;
    const started = performance.now();
    session.post('HeapProfiler.collectGarbage', (error) => {
      running = false;
      // The collection's own time is not the agent's load: the next interval starts after it.
      last = performance.eventLoopUtilization();
      if (error) return options.log.warn({ event: 'memory_compaction_failed', reason: error.message }, 'heap compaction failed');
      compactions++;
      const after = getHeapStatistics();
      options.log.debug({ event: 'memory_compacted', heapBeforeMb: Math.round(before.total_heap_size / MB), heapAfterMb: Math.round(after.total_heap_size / MB), ms: Math.round(performance.now() - started) }, 'quiet again: heap compacted');
    });
  };
  const timer = setInterval(check, checkEveryMs);
  timer.unref();
  return {
    get compactions() { return compactions; },
    stop() {
      clearInterval(timer);
      session.disconnect();
    },
  };
}
