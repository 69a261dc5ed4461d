/**
 * The one logger (pino): JSON lines to stdout, or to a given stream. Key material is never handed
 * to it by construction; the redaction list is a second line of defence (STYLE.md anti-pattern 2:
 * PyKMIP logs key bytes at DEBUG).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export { pino };

export type { Logger };

const REDACT = ['material', 'keyMaterial', 'key', 'secret', '*.material', '*.keyMaterial', '*.key', '*.secret'];

export function createLogger(options: { level?: string; name?: string } = {}, destination?: DestinationStream): Logger {
  const settings = { level: options.level ?? 'info', name: options.name ?? 'kmip-edge', redact: { paths: REDACT, censor: '[redacted]' } };
  return destination ? pino(settings, destination) : pino(settings);
}

/** A logger that writes nothing (tests and libraries that were not given one). */
export const silentLogger: Logger = pino({ level: 'silent' });
