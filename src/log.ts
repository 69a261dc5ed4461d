/**
 * The one logger (pino): JSON lines to stdout, or to a given stream. Key material is never handed
 * to it by construction; the redaction list is a second line of defence (STYLE.md anti-pattern 2:
 * PyKMIP logs key bytes at DEBUG).
 *
 * Operator-facing lines carry a stable `event` field (upstream_offline, refill, device_added, …;
 * the table is in the README); the message text may change, the event names do not.
 */
import { isatty } from 'node:tty';
import { pino, type DestinationStream, type Logger } from 'pino';

export { pino };

export type { Logger };

const REDACT = ['material', 'keyMaterial', 'key', 'secret', '*.material', '*.keyMaterial', '*.key', '*.secret'];

export function createLogger(options: { level?: string; name?: string } = {}, destination?: DestinationStream): Logger {
  const settings = { level: options.level ?? 'info', name: options.name ?? 'kmip-edge', redact: { paths: REDACT, censor: '[redacted]' } };
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
  // Synchronous: the lines before an exit (a one-line error, a SIGTERM) are written, not lost in a buffer.
  if (!terminal) return pino.destination({ dest: fd, sync: true });
  const { default: pinoPretty } = await import('pino-pretty');
  return pinoPretty({ destination: fd, sync: true, colorize: process.env.NO_COLOR === undefined, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname,name' });
}

/** A logger that writes nothing (tests and libraries that were not given one). */
export const silentLogger: Logger = pino({ level: 'silent' });
