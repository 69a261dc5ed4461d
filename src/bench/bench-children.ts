/**
 * The processes a benchmark starts (dev server, agent, broker, load generators) end with it. A
 * SIGTERM or SIGINT sent to the benchmark alone (a supervisor, `kill`, not the terminal's Ctrl-C,
 * which reaches the whole process group) would otherwise leave them running, holding ports and
 * CPU: so each one is recorded here and, on such a signal, sent SIGTERM before the benchmark exits
 * with 128 + the signal's number, as a shell reports it.
 */
import type { ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();
const SIGNALS = { SIGINT: 2, SIGTERM: 15 } as const;
let installed = false;

function endAll(signal: keyof typeof SIGNALS): void {
  for (const child of running) child.kill('SIGTERM');
  process.exit(128 + SIGNALS[signal]);
}

/** Records `child` until it exits; returns it. */
export function benchChild<T extends ChildProcess>(child: T): T {
  if (!installed) {
    installed = true;
    for (const signal of Object.keys(SIGNALS) as (keyof typeof SIGNALS)[]) process.once(signal, () => endAll(signal));
  }
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}
