/**
 * Runs one `kmip-edge` command from the built bundle as a child and SIGKILLs it at a chosen
 * moment: after a delay, or as soon as `when()` is seen true (polled), whichever the cycle asks
 * for. Resolves once the child is gone, telling whether it was killed or ran to its end.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/cli.ts';

const BIN = join(ROOT, 'dist/kmip-edge.mjs');
/** A child not gone by then is killed and the run reported as a failure (bounded tests). */
const BOUND_MS = 120_000;

export interface KillOutcome {
  killed: boolean;
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function runUntilKilled(args: string[], kill: { afterMs: number } | { when: () => boolean } | undefined): Promise<KillOutcome> {
  const started = Date.now();
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let killed = false;
  const killNow = (): void => {
    if (child.exitCode === null && child.signalCode === null) killed = child.kill('SIGKILL');
  };
  const timers: NodeJS.Timeout[] = [setTimeout(killNow, BOUND_MS)];
  if (kill && 'afterMs' in kill) timers.push(setTimeout(killNow, kill.afterMs));
  if (kill && 'when' in kill) {
    const poll = (): void => {
      if (kill.when()) return killNow();
      if (child.exitCode === null && child.signalCode === null) timers.push(setTimeout(poll, 1));
    };
    poll();
  }
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      for (const timer of timers) clearTimeout(timer);
      resolve({ killed, code, stdout, stderr, ms: Date.now() - started });
    });
  });
}
