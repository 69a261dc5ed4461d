/**
 * Throughput of a synchronous operation: a warm-up, then several timed rounds; the median round
 * is reported, so one noisy round (another process on a shared core) does not decide the figure.
 */
export async function measureOpsPerSecond(operation: () => unknown, seconds: number, rounds = 5): Promise<number> {
  const roundNs = (seconds * 1e9) / rounds;
  runFor(operation, Math.min(roundNs, 2e8)); // warm-up: let the JIT optimize
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    rates.push(runFor(operation, roundNs));
    await new Promise((resolve) => setImmediate(resolve)); // let GC and I/O breathe between rounds
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)]!;
}

/** Holds each result so the optimizer cannot drop the work. */
export let sink: unknown;

function runFor(operation: () => unknown, durationNs: number): number {
  const start = process.hrtime.bigint();
  let n = 0;
  let elapsed = 0;
  let batch = 64;
  do {
    for (let i = 0; i < batch; i++) sink = operation();
    n += batch;
    elapsed = Number(process.hrtime.bigint() - start);
    if (elapsed < durationNs / 20) batch *= 2;
  } while (elapsed < durationNs);
  return n / (elapsed / 1e9);
}
