/**
 * The usage-allocation ledger (KMIP Usage Guide §4.4; ARCHITECTURE.md §3, §4 invariants 1–3).
 * Per key: the units the upstream granted this agent (Get Usage Allocation), the units granted
 * to devices, and one record per device grant. Rules:
 * - a device grant is on disk (one synced, group-committed batch with the new totals) before it
 *   is acknowledged, and a retried request (same device, same request id) gets the same answer
 *   without being counted again;
 * - units granted to devices never exceed units granted by the upstream;
 * - an upstream allocation is recorded only after the server said yes: one whose outcome is
 *   unknown counts as not granted, so a crash loses at most one small chunk, never over-uses;
 * - refills ask for small chunks, sized from the recent consumption rate within bounds.
 */
import { KmipEdgeError } from '../errors.ts';
import type { BatchOperation, KeyValueStore } from '../store/kv-store.ts';

/** Asks the upstream for `count` more units of `uid` (KMIP Get Usage Allocation). */
export type AllocateFromUpstream = (uid: string, count: bigint) => Promise<void>;

export interface LedgerOptions {
  store: KeyValueStore;
  allocate: AllocateFromUpstream;
  /** Refill chunk bounds (units) and how many seconds of recent consumption a chunk should cover. */
  minChunk?: bigint;
  maxChunk?: bigint;
  chunkSeconds?: number;
  /** Start a background refill when the remaining allocation falls below this many chunks. */
  lowWaterChunks?: number;
  now?: () => number;
}

export interface KeyTotals {
  allocatedFromUpstream: bigint;
  grantedToDevices: bigint;
}

export interface GrantRecord {
  uid: string;
  device: string;
  requestId: string;
  count: bigint;
  /** Milliseconds since the epoch, when the grant was made. */
  at: number;
}

const TOTALS = 'ledger/totals/';
/** Grants kept in memory per key for retry detection; older ones are looked up on disk. */
const MAX_INDEXED_GRANTS = 200_000;
const GRANT = 'ledger/grant/';

function totalsKey(uid: string): string {
  return TOTALS + encodeURIComponent(uid);
}

function grantKey(uid: string, device: string, requestId: string): string {
  return `${GRANT}${encodeURIComponent(uid)}/${encodeURIComponent(device)}/${encodeURIComponent(requestId)}`;
}

function encodeJson(value: unknown): Uint8Array {
  return new Uint8Array(Buffer.from(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))));
}

interface KeyState extends KeyTotals {
  /** Grants by device and request id: all of the key's while `complete`, else the most recent. */
  grants: Map<string, Promise<GrantRecord>>;
  /** Every grant of the key on disk is in `grants`: a miss there means a new request. */
  complete: boolean;
  refill: Promise<void> | undefined;
  /** Recent consumption: [time ms, units] of the last grants, for sizing refills. */
  recent: [number, bigint][];
}

export class Ledger {
  private readonly keys = new Map<string, KeyState>();
  private readonly options: Required<Omit<LedgerOptions, 'store' | 'allocate'>> & Pick<LedgerOptions, 'store' | 'allocate'>;

  constructor(options: LedgerOptions) {
    this.options = { minChunk: 10n, maxChunk: 10_000n, chunkSeconds: 10, lowWaterChunks: 1, now: Date.now, ...options };
  }

  /** Loads the ledger of `uid` from the store (once). */
  private async state(uid: string): Promise<KeyState> {
    const known = this.keys.get(uid);
    if (known) return known;
    const raw = await this.options.store.get(totalsKey(uid));
    const totals = raw ? (JSON.parse(Buffer.from(raw).toString()) as { allocatedFromUpstream: string; grantedToDevices: string }) : undefined;
    // Index the key's grants once, so that checking a request for a retry costs no disk read.
    const grants = new Map<string, Promise<GrantRecord>>();
    for await (const [, value] of this.options.store.entries(`${GRANT}${encodeURIComponent(uid)}/`)) {
      const record = parseGrant(value);
      grants.set(`${record.device}\u0000${record.requestId}`, Promise.resolve(record));
    }
    const state: KeyState = this.keys.get(uid) ?? {
      allocatedFromUpstream: BigInt(totals?.allocatedFromUpstream ?? 0),
      grantedToDevices: BigInt(totals?.grantedToDevices ?? 0),
      grants,
      complete: grants.size <= MAX_INDEXED_GRANTS,
      refill: undefined,
      recent: [],
    };
    this.keys.set(uid, state);
    return state;
  }

  async totals(uid: string): Promise<KeyTotals> {
    const { allocatedFromUpstream, grantedToDevices } = await this.state(uid);
    return { allocatedFromUpstream, grantedToDevices };
  }

  /**
   * Grants `count` units of `uid` to `device` for its request `requestId`. Resolves once the grant
   * is durable; throws LEDGER_INSUFFICIENT when neither the allocation nor a refill covers it.
   */
  async grant(uid: string, device: string, requestId: string, count: bigint): Promise<GrantRecord> {
    if (count <= 0n) throw new KmipEdgeError('LEDGER_INVALID', 'a grant is for at least one unit');
    const state = await this.state(uid);
    const id = `${device}\u0000${requestId}`;
    const existing = state.grants.get(id);
    if (existing) return existing;
    if (!state.complete) {
      const stored = await this.options.store.get(grantKey(uid, device, requestId));
      if (stored) {
        const record = parseGrant(stored);
        state.grants.set(id, Promise.resolve(record));
        return record;
      }
      if (state.grants.has(id)) return state.grants.get(id)!;
    }
    // A retried grant is answered from its record above; a new one needs a write. On a disk that
    // cannot take one, refuse it before anything is reserved or asked of the upstream (whose
    // units could not be recorded either): the device gets a clear result, nothing is debited.
    const refusal = this.options.store.writeRefusal();
    if (refusal) throw refusal;
    // Synchronously from here to the reservation: concurrent grants see each other's units.
    const pending = this.reserve(uid, state, device, requestId, count);
    state.grants.set(id, pending);
    pending.catch(() => state.grants.delete(id));
    if (state.grants.size > MAX_INDEXED_GRANTS) {
      // Forget the oldest; from now on a miss must be checked on disk.
      state.grants.delete(state.grants.keys().next().value!);
      state.complete = false;
    }
    return pending;
  }

  private async reserve(uid: string, state: KeyState, device: string, requestId: string, count: bigint): Promise<GrantRecord> {
    while (state.allocatedFromUpstream - state.grantedToDevices < count) {
      await this.refill(uid, state, count - (state.allocatedFromUpstream - state.grantedToDevices));
    }
    state.grantedToDevices += count;
    const now = this.options.now();
    const consumed: [number, bigint] = [now, count];
    state.recent.push(consumed);
    if (state.recent.length > 256) state.recent.splice(0, state.recent.length - 256);
    const record: GrantRecord = { uid, device, requestId, count, at: now };
    const operations: BatchOperation[] = [
      { type: 'put', key: grantKey(uid, device, requestId), value: encodeJson(record) },
      { type: 'put', key: totalsKey(uid), value: encodeJson({ allocatedFromUpstream: state.allocatedFromUpstream, grantedToDevices: state.grantedToDevices }) },
    ];
    try {
      await this.options.store.commit(operations);
    } catch (error) {
      // Not on disk, so not granted: give the units back (a later commit's totals may still count
      // them — too many granted on disk is a loss, never over-use).
      state.grantedToDevices -= count;
      const i = state.recent.indexOf(consumed);
      if (i >= 0) state.recent.splice(i, 1);
      throw error;
    }
    if (state.allocatedFromUpstream - state.grantedToDevices < this.chunk(state) * BigInt(this.options.lowWaterChunks)) {
      void this.refill(uid, state, undefined).catch(() => undefined); // background top-up below the low-water mark
    }
    return record;
  }

  /** Chunk size: the units consumed over the last `chunkSeconds`, within [minChunk, maxChunk]. */
  private chunk(state: KeyState): bigint {
    const since = this.options.now() - this.options.chunkSeconds * 1000;
    const recent = state.recent.filter(([at]) => at >= since).reduce((sum, [, units]) => sum + units, 0n);
    return recent < this.options.minChunk ? this.options.minChunk : recent > this.options.maxChunk ? this.options.maxChunk : recent;
  }

  /**
   * One upstream refill at a time per key; the allocation is recorded only once granted. A full
   * chunk first; when the upstream refuses it and units are `needed` now, just those. A background
   * top-up (`needed` undefined) asks for a chunk only.
   */
  private refill(uid: string, state: KeyState, needed: bigint | undefined): Promise<void> {
    if (state.refill) return state.refill;
    const chunk = this.chunk(state);
    const attempts = needed === undefined ? [chunk] : chunk > needed ? [chunk, needed] : [needed];
    state.refill = (async () => {
      const refusal = this.options.store.writeRefusal();
      if (refusal) throw refusal; // units granted now could not be recorded: do not ask for them
      let granted: bigint | undefined;
      let failure: unknown;
      for (const wanted of attempts) {
        try {
          await this.options.allocate(uid, wanted);
          granted = wanted;
          break;
        } catch (error) {
          failure = error;
          if ((error as { code?: string }).code === 'KMIP_OUTCOME_UNKNOWN' || (error as { code?: string }).code?.startsWith('NET_')) break;
        }
      }
      if (granted === undefined) {
        throw new KmipEdgeError('LEDGER_INSUFFICIENT', `no units of ${uid} left here and the upstream granted no more: ${(failure as Error).message}`, { cause: failure });
      }
      state.allocatedFromUpstream += granted;
      await this.options.store.commit([
        { type: 'put', key: totalsKey(uid), value: encodeJson({ allocatedFromUpstream: state.allocatedFromUpstream, grantedToDevices: state.grantedToDevices }) },
      ]);
    })().finally(() => {
      state.refill = undefined;
    });
    return state.refill;
  }

  /** Every grant record of `uid`, from the store. */
  async grants(uid: string): Promise<GrantRecord[]> {
    const out: GrantRecord[] = [];
    for await (const [, value] of this.options.store.entries(`${GRANT}${encodeURIComponent(uid)}/`)) out.push(parseGrant(value));
    return out;
  }

  /** Keys with a ledger, from the store. */
  async keyIds(): Promise<string[]> {
    const out: string[] = [];
    for await (const [key] of this.options.store.entries(TOTALS)) out.push(decodeURIComponent(key.slice(TOTALS.length)));
    return out;
  }
}

function parseGrant(bytes: Uint8Array): GrantRecord {
  const raw = JSON.parse(Buffer.from(bytes).toString()) as Omit<GrantRecord, 'count'> & { count: string };
  return { ...raw, count: BigInt(raw.count) };
}
