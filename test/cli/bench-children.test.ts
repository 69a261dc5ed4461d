/**
 * A benchmark stopped by a signal sent to it alone (SIGTERM from a supervisor or `kill`; Ctrl-C
 * reaches the whole process group anyway) takes the processes it started with it
 * (src/bench/bench-children.ts): here `bench footprint`'s development server, while it creates keys.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from '../helpers/cli.ts';

/** The live child processes of `pid` (/proc/PID/task/TID/children). */
function childrenOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
}

/** Gone, or a zombie waiting for whoever adopted it: either way no longer running. */
function running(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/stat`)) return false;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

it('bench footprint sent SIGTERM stops the dev server it started and exits 143', { timeout: 120_000 }, async () => {
  const bench = spawn(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), 'bench', 'footprint', '--keys', '5000', '--devices', '10', '--rounds', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => bench.once('exit', (code) => resolve(code)));
  let started: number[] = [];
  try {
    // The dev server is up once the benchmark creates keys on it.
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: bench.stderr! }).on('line', (line) => line.includes('creating') && resolve());
      bench.once('exit', (code) => reject(new Error(`bench footprint exited ${code} before creating keys`)));
    });
    started = childrenOf(bench.pid!);
    assert.ok(started.length >= 1, 'the dev server is a child of the benchmark');
    bench.kill('SIGTERM');
    assert.equal(await exited, 143, '128 + SIGTERM, as a shell reports it');
    for (let waited = 0; started.some(running) && waited < 20_000; waited += 100) await sleep(100);
    assert.deepEqual(started.filter(running), [], 'no process the benchmark started is still running');
  } finally {
    bench.kill('SIGKILL');
    for (const pid of started.filter(running)) process.kill(pid, 'SIGKILL'); // what a failure left behind
  }
});
