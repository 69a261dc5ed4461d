/**
 * Ledger benchmark (CLI.md `bench ledger`): durable device grants per second with 1, 16 and 256
 * concurrent requesters — every grant on disk (synced, group-committed) before its reply — next
 * to the baseline measured in the same run: one synced LevelDB write per grant, one at a time.
 * The upstream here grants every refill at once (no network): this measures the ledger and store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ledger } from '../agent/ledger.ts';
import { LevelStore } from '../store/kv-store.ts';

async function grantsPerSecond(requesters: number, seconds: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-bench-ledger-'));
  const store = await LevelStore.open(dir);
  try {
    const ledger = new Ledger({ store, allocate: async () => undefined, minChunk: 1000n, maxChunk: 100_000n });
    const deadline = Date.now() + seconds * 1000;
    let granted = 0;
    let sequence = 0;
    const started = process.hrtime.bigint();
    await Promise.all(Array.from({ length: requesters }, async (_, r) => {
      while (Date.now() < deadline) {
        await ledger.grant('bench-key', `device-${r}`, `req-${sequence++}`, 1n);
        granted++;
      }
    }));
    return granted / (Number(process.hrtime.bigint() - started) / 1e9);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function syncedWritesPerSecond(seconds: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-bench-sync-'));
  // Loaded here, not at the top: a static import would put the native addon in every command's start (test/process/lazy-native.test.ts).
  const { ClassicLevel } = await import('classic-level');
  const db = new ClassicLevel<string, string>(dir);
  await db.open();
  try {
    const deadline = Date.now() + seconds * 1000;
    let writes = 0;
    const started = process.hrtime.bigint();
    while (Date.now() < deadline) await db.put(`grant-${writes++}`, '{"count":"1"}', { sync: true });
    return writes / (Number(process.hrtime.bigint() - started) / 1e9);
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchLedger(options: { seconds: number; json: boolean; out: (text: string) => void }): Promise<void> {
  const baselinePerSec = Math.round(await syncedWritesPerSecond(options.seconds));
  if (!options.json) options.out(`ledger: durable grants/s (baseline: one synced write per grant, same run: ${baselinePerSec}/s)\n`);
  for (const requesters of [1, 16, 256]) {
    const grantsPerSec = Math.round(await grantsPerSecond(requesters, options.seconds));
    if (options.json) options.out(JSON.stringify({ bench: 'ledger', requesters, grantsPerSec, baselinePerSec }) + '\n');
    else options.out(`  ${String(requesters).padStart(3)} requesters: ${grantsPerSec.toLocaleString('en')}/s (${(grantsPerSec / baselinePerSec).toFixed(1)}× the baseline)\n`);
  }
}
