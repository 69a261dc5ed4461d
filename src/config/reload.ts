/**
 * What SIGHUP changes in a running agent (issue #12 §2). Reloaded at once: the log level, the
 * nonce-MAC mapping (used from the next cache fill) and the device registry (every device's
 * allow-lists and limits are read again from the store). Everything else — the data folder,
 * the upstream address and certificates, the MQTT broker, serial lines, listeners, metrics — is
 * bound to sockets and files opened at start: a change there is logged as needing a restart and
 * the running value is kept. A file that does not validate changes nothing (the errors are logged).
 */
import type { AgentConfig } from './schema.ts';

/** Top-level fields applied by a reload. */
export const RELOADABLE: ReadonlySet<string> = new Set(['logLevel', 'nonceMac']);

/** Dotted paths of the leaves that differ between two configurations. */
export function changedFields(before: unknown, after: unknown, prefix = ''): string[] {
  const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  // A section added or removed: its leaves are what changed.
  if ((isMapping(before) && after === undefined) || (before === undefined && isMapping(after))) return changedFields(before ?? {}, after ?? {}, prefix);
  if (isMapping(before) && isMapping(after)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    return [...keys].sort().flatMap((key) => changedFields(before[key], after[key], prefix ? `${prefix}.${key}` : key));
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [prefix];
}

/** Splits the changes into those a reload applies and those that need a restart. */
export function planReload(before: AgentConfig, after: AgentConfig): { apply: string[]; restart: string[] } {
  const changed = changedFields(before, after);
  const top = (path: string): string => path.split('.')[0]!;
  return { apply: changed.filter((path) => RELOADABLE.has(top(path))), restart: changed.filter((path) => !RELOADABLE.has(top(path))) };
}
