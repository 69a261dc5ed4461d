/**
 * A built `kmip-edge` command as a child process whose output the test reads as it comes: JSON
 * lines on stdout (the ready line, device-sim's results) and the pino log lines on stderr, with
 * a wait for a given line (bounded, naming what it waited for).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './cli.ts';

export type Line = Record<string, unknown>;

export interface CliProcess {
  child: ChildProcess;
  /** JSON lines printed on stdout so far. */
  out: Line[];
  /** JSON log lines written on stderr so far. */
  logs: Line[];
  /** Everything written on stderr so far. */
  readonly stderr: string;
  /** Resolves with the first stdout line (the ready line of `run`). */
  firstLine(ms?: number): Promise<Line>;
  /** Resolves with the first log line, from `from` on, that `match` accepts. */
  waitForLog(match: (line: Line) => boolean, what: string, ms?: number, from?: number): Promise<Line>;
  /** Resolves with the exit code once all output is read. */
  closed: Promise<number | null>;
}

/** `env`: the child's whole environment (default: this process's). */
export function spawnCli(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): CliProcess {
  const child = spawn(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), ...args], { stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
  if (options.stdin !== undefined) child.stdin!.end(options.stdin);
  const out: Line[] = [];
  const logs: Line[] = [];
  let stderr = '';
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const waiter of waiters) waiter();
  };
  const lines = (stream: NodeJS.ReadableStream, into: Line[], raw?: (text: string) => void) => {
    let buffered = '';
    stream.on('data', (chunk: Buffer) => {
      raw?.(chunk.toString());
      buffered += chunk.toString();
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const text = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          into.push(JSON.parse(text) as Line);
        } catch {
          into.push({ text });
        }
      }
      wake();
    });
  };
  lines(child.stdout!, out);
  lines(child.stderr!, logs, (text) => (stderr += text));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => {
    wake();
    resolve(code);
  }));
  let exited = false;
  void closed.then(() => (exited = true));
  const wait = <T>(find: () => T | undefined, what: string, ms: number): Promise<T> => new Promise((resolve, reject) => {
    const check = () => {
      const found = find();
      if (found !== undefined) return done(() => resolve(found));
      if (exited) return done(() => reject(new Error(`${args[0]} exited before ${what}: ${stderr}`)));
    };
    const timer = setTimeout(() => done(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}; stderr: ${stderr}`))), ms);
    const done = (then: () => void) => {
      clearTimeout(timer);
      waiters.delete(check);
      then();
    };
    waiters.add(check);
    check();
  });
  return {
    child, out, logs,
    get stderr() {
      return stderr;
    },
    firstLine: (ms = 60_000) => wait(() => out[0], 'its first line on stdout', ms),
    waitForLog: (match, what, ms = 60_000, from = 0) => wait(() => logs.slice(from).find(match), what, ms),
    closed,
  };
}

/** Stops a process that may still run: SIGTERM, and the exit code. */
export async function stopCli(process: CliProcess | undefined): Promise<number | null> {
  if (!process) return null;
  if (process.child.exitCode === null && process.child.signalCode === null) process.child.kill('SIGTERM');
  return process.closed;
}
