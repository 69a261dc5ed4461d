/**
 * `kmip-edge cache --data DIR [--json]`: the keys the agent has cached — identifiers, names,
 * state, dates, lease — and never their material. Reads the store of a stopped agent, or asks the
 * running agent that holds it (its admin socket). JSON in the spec's words (CLI.md): enumerations
 * by name (`SymmetricKey`, `Active`, `AES`), the usage mask as its bit names, dates in ISO 8601 UTC.
 */
import { isoTime } from '../iso-time.ts';
import { parseArgs } from 'node:util';
import { listCachedKeys, type KeyMetadata } from '../agent/key-cache.ts';
import { Tag } from '../kmip/tables.generated.ts';
import { enumerationText, maskFor, maskText } from '../kmip/vocabulary.ts';
import { withAgentStore } from './agent-store.ts';

/** A cached key as `cache --json` (and `status`) show it. */
export interface CacheEntry {
  uniqueIdentifier: string;
  objectType: string;
  names: string[];
  objectGroups: string[];
  state: string;
  cryptographicAlgorithm: string | null;
  cryptographicLength: number | null;
  cryptographicUsageMask: string[] | null;
  usageLimitsUnit: string | null;
  activationDate: string | null;
  processStartDate: string | null;
  protectStopDate: string | null;
  deactivationDate: string | null;
  compromiseDate: string | null;
  lastChangeDate: string | null;
  /** End of the current lease; null when the lease has no limit. */
  leaseExpiresAt: string | null;
  /** When the agent last heard from the upstream about the key. */
  refreshedAt: string;
}

/** Seconds since the epoch → ISO 8601 UTC. */
export function isoDate(seconds: bigint): string;
export function isoDate(seconds: bigint | undefined): string | null;
export function isoDate(seconds: bigint | undefined): string | null {
  return seconds === undefined ? null : isoTime(Number(seconds) * 1000).replace('.000Z', 'Z');
}

export function cacheEntry(meta: KeyMetadata): CacheEntry {
  const mask = maskFor(Tag.CryptographicUsageMask);
  return {
    uniqueIdentifier: meta.uniqueIdentifier,
    objectType: enumerationText(Tag.ObjectType, meta.objectType),
    names: meta.names,
    objectGroups: meta.objectGroups,
    state: enumerationText(Tag.State, meta.state),
    cryptographicAlgorithm: meta.algorithm === undefined ? null : enumerationText(Tag.CryptographicAlgorithm, meta.algorithm),
    cryptographicLength: meta.length ?? null,
    cryptographicUsageMask: meta.usageMask === undefined || !mask ? null : maskText(mask, meta.usageMask, ' ').split(' '),
    usageLimitsUnit: meta.usageLimitsUnit === undefined ? null : enumerationText(Tag.UsageLimitsUnit, meta.usageLimitsUnit),
    activationDate: isoDate(meta.activationDate),
    processStartDate: isoDate(meta.processStartDate),
    protectStopDate: isoDate(meta.protectStopDate),
    deactivationDate: isoDate(meta.deactivationDate),
    compromiseDate: isoDate(meta.compromiseDate),
    lastChangeDate: isoDate(meta.lastChangeDate),
    leaseExpiresAt: isoDate(meta.leaseExpiresAt),
    refreshedAt: isoDate(meta.refreshedAt),
  };
}

/** A one-line description of a cached key for operators: never the material. */
export function describeEntry(entry: CacheEntry): string {
  return `${entry.uniqueIdentifier} ${entry.names.join(',') || '-'} ${entry.objectType} ${entry.state} lease ${entry.leaseExpiresAt ?? 'unlimited'}`;
}

export async function runCacheCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parseArgs({ args, options: { data: { type: 'string' }, json: { type: 'boolean', default: false } }, strict: true });
  const keys = await withAgentStore(values.data, 'cache', async (store) => (await listCachedKeys(store)).map(cacheEntry), 'cache', (answer) => (answer as { keys: CacheEntry[] }).keys);
  if (values.json) out(JSON.stringify({ keys }) + '\n');
  else out(keys.length === 0 ? 'no cached keys\n' : keys.map(describeEntry).join('\n') + '\n');
  return 0;
}
