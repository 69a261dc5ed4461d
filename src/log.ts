/**
 * The one logger (pino): JSON lines to stdout, or to a given stream. Key material is never handed
 * to it by construction; the redaction list is a second line of defence (STYLE.md anti-pattern 2:
 * PyKMIP logs key bytes at DEBUG).
 *
 * Operator-facing lines carry a stable `event` field (upstream_offline, refill, device_added, …;
 * the table is in the README); the message text may change, the event names do not.
 */
import { writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { pino, type DestinationStream, type Logger } from 'pino';

export { pino };

export type { Logger };

/** Field names whose values are never written, at the top of a log object or one level inside it. */
const SECRET_FIELDS = new Set(['material', 'keyMaterial', 'key', 'secret']);
const CENSOR = '[redacted]';

/**
 * The redaction (a second line of defence: key material is never handed to the logger by
 * construction): every field named in SECRET_FIELDS, at the top of the object logged or inside an
 * object, error or array element one level below it, is written as "[redacted]". The object itself
 * is left as it is; only what contains a secret field is copied. This replaces pino's `redact`
 * paths (`*.key` …), whose wildcards cost ~10 µs per line (measured: 14.2 µs a line with them,
 * 4.3 without, 4.9–5.3 with this) — a large share of a request at the local KMIP endpoint, which
 * logs an audit event for every one (issue #16).
 */
export function redactSecrets(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const name of Object.keys(fields)) {
    const value = fields[name];
    const written = SECRET_FIELDS.has(name) ? CENSOR : censoredInside(value);
    if (written !== value) (out ??= { ...fields })[name] = written;
  }
  return out ?? fields;
}

/** `value` with its own secret fields censored (one level: an object, an error, an array's elements). */
function censoredInside(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((element, index) => {
      const written = element !== null && typeof element === 'object' && !Array.isArray(element) ? censoredFields(element as Record<string, unknown>) : element;
      if (written !== element) (copy ??= [...value])[index] = written;
    });
    return copy ?? value;
  }
  return censoredFields(value as Record<string, unknown>);
}

function censoredFields(value: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const name of Object.keys(value)) {
    if (!SECRET_FIELDS.has(name) || value[name] === undefined) continue;
    copy ??= sameKindCopy(value);
    copy[name] = CENSOR;
  }
  return copy ?? value;
}

/** A copy that pino's serializers treat as the original: same prototype, and an error's message and stack. */
function sameKindCopy(value: Record<string, unknown>): Record<string, unknown> {
  const copy = Object.assign(Object.create(Object.getPrototypeOf(value) as object | null) as Record<string, unknown>, value);
  if (value instanceof Error) Object.assign(copy, { message: value.message, stack: value.stack, ...('cause' in value && { cause: value.cause }) });
  return copy;
}

export function createLogger(options: { level?: string; name?: string } = {}, destination?: DestinationStream): Logger {
  const settings = { level: options.level ?? 'info', name: options.name ?? 'kmip-edge', formatters: { log: redactSecrets } };
  return destination ? pino(settings, destination) : pino(settings);
}

/**
 * Where a command's logs go: file descriptor `fd` as JSON lines (for journald, files, log
 * shippers), or pretty-printed when a person is watching — `fd` is a terminal. pino-pretty runs as
 * a stream in this process, never as a pino transport: transports are worker threads, which break
 * inside the esbuild bundle (TOOLCHAIN.md). Colours unless NO_COLOR is set (no-color.org).
 * pino-pretty (and its date, colour and copy modules) is loaded only then (issue #15 footprint).
 */
export async function logDestination(fd: number, terminal: boolean = isatty(fd)): Promise<DestinationStream> {
  if (!terminal) return batchedLines(fd);
  const { default: pinoPretty } = await import('pino-pretty');
  return pinoPretty({ destination: fd, sync: true, colorize: process.env.NO_COLOR === undefined, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname,name' });
}

/**
 * JSON lines to `fd`, gathered and written by one synchronous write at most LOG_FLUSH_MS after the
 * first of them (or at once when the next line might not fit in the LOG_BUFFER_BYTES gathered): at
 * the local KMIP endpoint, where every request is an audit event (issue #16), a write per line was
 * a system call per request (measured: 4–11 µs of server CPU per request on a noisy host, `bench
 * kmip-endpoint`). Buffered access logs are the rule among servers (nginx `access_log … buffer=
 * flush=`, Envoy's file flush interval); the bound here is short. Each line is encoded into one
 * buffer as it comes, as nginx's access log buffer does: gathering the strings and joining them
 * at the write cost the endpoint 1–3 µs a request more (same-run pairs of listeners, `bench
 * kmip-endpoint`). What is pending is also written at process exit (the one-line error, a
 * SIGTERM's last lines) and on logger.flush(); only SIGKILL (or a crash of Node itself) loses the
 * lines of the last LOG_FLUSH_MS. Writes block, as the unbatched destination's did: a slow reader
 * (journald) slows logging, it never grows a buffer beyond the bound.
 */
function batchedLines(fd: number): DestinationStream & GatheredLines & { flush(callback?: (error?: Error) => void): void } {
  const gathered = Buffer.alloc(LOG_BUFFER_BYTES);
  let used = 0;
  let scheduled = false;
  const writePending = () => {
    scheduled = false;
    if (used === 0) return;
    const length = used;
    used = 0;
    writeFully(fd, gathered.subarray(0, length)); // synchronous: the buffer is free again after it
  };
  const written = (end: number) => {
    used = end;
    if (!scheduled) {
      scheduled = true;
      setTimeout(writePending, LOG_FLUSH_MS).unref(); // an exit writes them if the process ends before
    }
  };
  /** Where a line of at most `maxBytes` goes: after what is gathered, or at 0 once that is written (a long burst: written as it goes, memory bounded); -1 when no buffer holds it. */
  const reserve = (maxBytes: number) => {
    if (maxBytes > LOG_BUFFER_BYTES) return -1;
    if (used + maxBytes > LOG_BUFFER_BYTES) writePending();
    return used;
  };
  process.once('exit', writePending);
  return {
    write(line: string) {
      // A UTF-16 code unit is at most 3 bytes of UTF-8: a line that may not fit is never cut.
      const at = reserve(line.length * 3);
      if (at < 0) {
        writePending();
        return void writeFully(fd, Buffer.from(line, 'utf8')); // longer than the buffer: on its own, after what came before it
      }
      written(at + gathered.write(line, at, 'utf8'));
    },
    gathered,
    reserve,
    commit: written,
    flush(callback) {
      writePending();
      callback?.();
    },
  };
}

/**
 * A destination that also takes a line as bytes put straight into the buffer it gathers lines in
 * (the JSON lines destination above): the audit event of a cached Get (src/edge/audit-event.ts) is
 * written so, with no string made for it.
 */
export interface GatheredLines {
  readonly gathered: Buffer;
  /** Where a line of at most `maxBytes` goes in `gathered` (room made for it); -1 for a line that long, to be written as a string. */
  reserve(maxBytes: number): number;
  /** The line reserved for ends before `end`, a newline included. */
  commit(end: number): void;
}

/** The destination a pino logger writes its lines to (pino keeps it under a symbol of its own). */
export function destinationOf(log: Logger): DestinationStream {
  return (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as DestinationStream;
}

/** The logger's destination when it takes lines as bytes (GatheredLines), else undefined. */
export function gatheredLinesOf(log: Logger): GatheredLines | undefined {
  const stream = destinationOf(log) as Partial<GatheredLines> | undefined;
  return stream?.gathered instanceof Buffer && typeof stream.reserve === 'function' ? (stream as GatheredLines) : undefined;
}

const LOG_BUFFER_BYTES = 64 * 1024;
const LOG_FLUSH_MS = 50;

/**
 * Writes all of `data` to `fd`, waiting while a non-blocking pipe is full (EAGAIN), as pino's
 * synchronous destination does. Any other failure (the reader gone: EPIPE; a full disk: ENOSPC)
 * drops these lines: logging never ends the agent, and the next lines are tried again.
 */
function writeFully(fd: number, data: Buffer): void {
  let written = 0;
  while (written < data.length) {
    try {
      written += writeSync(fd, data, written);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

/** A logger that writes nothing (tests and libraries that were not given one). */
export const silentLogger: Logger = pino({ level: 'silent' });
