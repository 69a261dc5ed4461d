/**
 * The durable outbox of offline Creates (issue #16): what a local KMIP client asked of a key the
 * pool handed it while the key server was unreachable — Names, `x-` attributes, Object Group,
 * Activate — waiting to be written to the key server. An entry is written in the same synced
 * batch as the take that created it (key-pool.ts), and deleted only after the key server holds
 * everything it asks for, in the same synced batch as the cache's refresh from the key server.
 *
 * Exactly once on the key server, across crashes: a drain first reads the key's attributes
 * (Get Attributes, KMIP 1.2 §4.12) and writes only what is missing — a Name already on this key
 * is done, an instance of an `x-` attribute already there with the same value counts against the
 * ones asked for, Activate only while the key is still Pre-Active. A crash after a write and
 * before the deletion is then repeated as a read that finds the write done. Add Attribute is not
 * idempotent (the upstream client never resends it), so one drain runs at a time.
 *
 * A Name already held by another object upstream (Locate by Name, KMIP 1.2 §4.9) is a conflict
 * (KMIP 1.2 §3.2: a Name identifies one object); a write the key server refuses (a KMIP result
 * error) is kept likewise: logged (event `outbox_conflict`), shown by `status`, never dropped.
 * The rest of that entry is still written and the other entries keep draining; the entry stays
 * until an operator retries it (after freeing the name) or discards it.
 */
import { isoTime } from '../iso-time.ts';
import { attributeItem, readAttribute, type Attribute } from '../kmip/attributes.ts';
import { KmipResultError } from '../kmip/message.ts';
import { ATTRIBUTE_SPECS, State, Tag } from '../kmip/tables.generated.ts';
import { KmipEdgeError } from '../errors.ts';
import { Lanes } from '../lanes.ts';
import { silentLogger, type Logger } from '../log.ts';
import type { BatchOperation, KeyValueStore } from '../store/kv-store.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { fromHex, toHex } from '../ttlv/hex.ts';
import { interval } from '../ttlv/build.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import type { KmipClient } from '../upstream/client.ts';
import type { KeyCache } from '../agent/key-cache.ts';

/** Store prefix of the entries; not `outbox/` (the push relay's, sealed). Keys sort in take order. */
export const EDGE_OUTBOX = 'edge/outbox/';
const SEQ_DIGITS = 12;

/** Why an entry stays: a Name another object holds upstream, or a write the key server refused. */
export interface OutboxProblem {
  kind: 'name_taken' | 'refused';
  /** The attribute (or operation: Get Attributes, Activate) that could not be written. */
  attribute: string;
  /** A Name's text. */
  value?: string;
  /** name_taken: the object upstream that holds the Name. */
  takenBy?: string;
  reason: string;
  at: string;
}

export interface OutboxEntry {
  /** Take order: entries drain in it. */
  seq: number;
  clientId: string;
  uid: string;
  takenAt: string;
  /** What the key server is to hold, as the client asked for it. */
  attributes: Attribute[];
  activate: boolean;
  /** Set when the last drain could not write everything; the drain skips the entry until retried. */
  problems?: OutboxProblem[];
}

/** An entry as `status` shows it: attribute names and Name texts, never attribute values otherwise. */
export interface OutboxEntryView {
  seq: number;
  clientId: string;
  uid: string;
  takenAt: string;
  attributes: string[];
  names: string[];
  activate: boolean;
  problems: OutboxProblem[];
}

/** A call to the key server behind the circuit breaker (AgentCore.upstream). */
export type UpstreamCall = <T>(what: string, call: (client: KmipClient) => Promise<T>) => Promise<T>;

export interface OutboxOptions {
  store: KeyValueStore;
  cache: Pick<KeyCache, 'applyNotify'>;
  upstream: UpstreamCall;
  log?: Logger;
  now?: () => Date;
  /**
   * An attribute to delete from the key upstream before anything else (the pool's marker); the
   * drain reports whether it is gone, `alongsideDone` gets that.
   */
  unmark?: string;
  /** Writes committed with the deletion of a drained entry (the pool's bookkeeping). */
  alongsideDone?: (entry: OutboxEntry, unmarked: boolean) => BatchOperation[];
}

export interface DrainReport {
  drained: number;
  /** Entries newly marked with a problem in this pass. */
  conflicted: number;
}

interface StoredEntry extends Omit<OutboxEntry, 'attributes'> {
  /** Each attribute as the hex of its TTLV Attribute structure. */
  attributes: string[];
}

const MULTI_INSTANCE = new Set(ATTRIBUTE_SPECS.filter(([, , multi]) => multi).map(([name]) => name));
const isCustom = (name: string): boolean => name.startsWith('x-') || name.startsWith('y-');
/** KMIP 1.2 §3: Name, Object Group, custom attributes … may have several instances; the others one. */
const multiInstance = (name: string): boolean => MULTI_INSTANCE.has(name) || isCustom(name);

/** The bytes of an attribute value, whatever tag it came with, to compare instances. */
function valueKey(value: TtlvItem | undefined): string {
  return value === undefined ? '' : toHex(encodeTtlv({ ...value, tag: Tag.AttributeValue }));
}

/** A Name attribute's text (KMIP 1.2 §3.2 Name Value). */
export function nameText(attribute: Attribute): string | undefined {
  const value = attribute.value;
  if (value?.type !== ItemType.Structure) return undefined;
  const text = value.value.find((c) => c.tag === Tag.NameValue)?.value;
  return typeof text === 'string' ? text : undefined;
}

function entryKey(seq: number): string {
  return EDGE_OUTBOX + String(seq).padStart(SEQ_DIGITS, '0');
}

function encodeEntry(entry: OutboxEntry): Uint8Array {
  const stored: StoredEntry = { ...entry, attributes: entry.attributes.map((a) => toHex(encodeTtlv(attributeItem(a)))) };
  return new Uint8Array(Buffer.from(JSON.stringify(stored)));
}

function decodeEntry(bytes: Uint8Array): OutboxEntry {
  const stored = JSON.parse(Buffer.from(bytes).toString()) as StoredEntry;
  return { ...stored, attributes: stored.attributes.map((hex) => readAttribute(decodeTtlv(fromHex(hex)))) };
}

/** KMIP refusals are kept on the entry; anything else (offline, no answer, a full disk) is retried later. */
function refusal(error: unknown): KmipResultError | undefined {
  return error instanceof KmipResultError ? error : undefined;
}

export class Outbox {
  /** Pending entries by seq, in take order (Map keeps insertion order; seqs only grow). */
  private readonly entries = new Map<number, OutboxEntry>();
  private nextSeq = 0;
  /** Drains, retries and discards one at a time. */
  private readonly lane = new Lanes();
  private readonly log: Logger;
  private readonly now: () => Date;

  private constructor(private readonly options: OutboxOptions) {
    this.log = options.log ?? silentLogger;
    this.now = options.now ?? (() => new Date());
  }

  static async load(options: OutboxOptions): Promise<Outbox> {
    const outbox = new Outbox(options);
    for await (const [, value] of options.store.entries(EDGE_OUTBOX)) {
      const entry = decodeEntry(value);
      outbox.entries.set(entry.seq, entry);
      outbox.nextSeq = Math.max(outbox.nextSeq, entry.seq + 1);
    }
    return outbox;
  }

  /**
   * A new entry and the write that records it, for the caller to commit in its own synced batch
   * (the take); `added` once it is committed. A seq left unused (the commit failed) is harmless.
   */
  prepare(entry: Omit<OutboxEntry, 'seq' | 'problems'>): { entry: OutboxEntry; operations: BatchOperation[] } {
    const full: OutboxEntry = { seq: this.nextSeq++, ...entry };
    return { entry: full, operations: [{ type: 'put', key: entryKey(full.seq), value: encodeEntry(full) }] };
  }

  added(entry: OutboxEntry): void {
    this.entries.set(entry.seq, entry);
  }

  /** Entries not yet on the key server, in take order. */
  pending(): OutboxEntry[] {
    return [...this.entries.values()];
  }

  /** The entry of `uid`, if one is pending (what a local client asked of a key not yet written upstream). */
  entryOf(uid: string): OutboxEntry | undefined {
    return this.pending().find((entry) => entry.uid === uid);
  }

  views(): OutboxEntryView[] {
    return this.pending().map((entry) => ({
      seq: entry.seq,
      clientId: entry.clientId,
      uid: entry.uid,
      takenAt: entry.takenAt,
      attributes: entry.attributes.map((a) => a.name),
      names: entry.attributes.filter((a) => a.name === 'Name').map((a) => nameText(a) ?? ''),
      activate: entry.activate,
      problems: entry.problems ?? [],
    }));
  }

  /** Entries kept because of a conflict or a refusal (for `kmip-edge status`). */
  conflicts(): OutboxEntryView[] {
    return this.views().filter((view) => view.problems.length > 0);
  }

  /**
   * Writes the pending entries to the key server, in order; an entry with a problem is skipped
   * (it waits for an operator). Stops at the first failure that is not a KMIP refusal — offline,
   * no answer, the store unwritable — and throws it: the caller retries later with back-off.
   */
  drain(): Promise<DrainReport> {
    return this.lane.run('outbox', async () => {
      const report: DrainReport = { drained: 0, conflicted: 0 };
      for (const entry of this.pending()) {
        if (entry.problems?.length) continue;
        const { problems, unmarked } = await this.writeUpstream(entry);
        if (problems.length > 0) {
          const marked: OutboxEntry = { ...entry, problems };
          await this.options.store.commit([{ type: 'put', key: entryKey(entry.seq), value: encodeEntry(marked) }]);
          this.entries.set(entry.seq, marked);
          for (const problem of problems) {
            this.log.error({ event: 'outbox_conflict', clientId: entry.clientId, uid: entry.uid, ...problem },
              'an offline Create could not be written to the key server in full: kept in the outbox until an operator retries or discards it');
          }
          report.conflicted++;
          continue;
        }
        await this.finish(entry, unmarked);
        report.drained++;
      }
      return report;
    });
  }

  /** Clears an entry's problems so that the next drain writes it again (after an operator freed the name). */
  retry(seq: number): Promise<void> {
    return this.lane.run('outbox', async () => {
      const entry = this.withProblems(seq);
      const cleared: OutboxEntry = { ...entry };
      delete cleared.problems;
      await this.options.store.commit([{ type: 'put', key: entryKey(seq), value: encodeEntry(cleared) }]);
      this.entries.set(seq, cleared);
      this.log.info({ event: 'outbox_retry', clientId: entry.clientId, uid: entry.uid, seq }, 'outbox entry to be written again');
    });
  }

  /**
   * Drops an entry with a problem for good (an operator decided): what it asked is not written.
   * The key stays taken (the pool's record of it is kept), it is never handed out again.
   */
  discard(seq: number): Promise<OutboxEntryView> {
    return this.lane.run('outbox', async () => {
      const entry = this.withProblems(seq);
      const [view] = this.views().filter((v) => v.seq === seq);
      await this.options.store.commit([{ type: 'del', key: entryKey(seq) }]);
      this.entries.delete(seq);
      this.log.warn({ event: 'outbox_discarded', clientId: entry.clientId, uid: entry.uid, seq, problems: entry.problems }, 'outbox entry discarded by the operator: not written to the key server');
      return view!;
    });
  }

  private withProblems(seq: number): OutboxEntry {
    const entry = this.entries.get(seq);
    if (!entry) throw new KmipEdgeError('OUTBOX_NO_ENTRY', `no outbox entry ${seq}`);
    if (!entry.problems?.length) throw new KmipEdgeError('OUTBOX_NOT_CONFLICTED', `outbox entry ${seq} (${entry.uid}) has no conflict: it is written by itself`);
    return entry;
  }

  /**
   * Everything the entry asks for that the key server lacks, written; what cannot be written is
   * returned as problems. Throws what is worth retrying (not a KMIP refusal).
   */
  private async writeUpstream(entry: OutboxEntry): Promise<{ problems: OutboxProblem[]; unmarked: boolean }> {
    const { uid } = entry;
    const up = this.options.upstream;
    /** A write upstream, logged once the key server has it (debug: the crash test's kill point). */
    const write = async (what: string, call: (client: KmipClient) => Promise<unknown>): Promise<void> => {
      await up(what, call);
      this.log.debug({ event: 'outbox_written', clientId: entry.clientId, uid, what }, 'written to the key server');
    };
    const problems: OutboxProblem[] = [];
    const at = (): string => isoTime(this.now());
    const refused = (attribute: string, error: KmipResultError, value?: string): void => void problems.push({ kind: 'refused', attribute, ...(value !== undefined && { value }), reason: error.message, at: at() });

    let held: Attribute[];
    try {
      held = (await up(`reading attributes of ${uid}`, (client) => client.getAttributes(uid))).attributes;
    } catch (error) {
      const refusedRead = refusal(error);
      if (!refusedRead) throw error;
      refused('Get Attributes', refusedRead);
      return { problems, unmarked: false };
    }

    let unmarked = true;
    const marker = this.options.unmark;
    if (marker !== undefined) {
      // Highest index first: the ones below keep their index (KMIP 1.2 §4.16).
      const instances = held.filter((a) => a.name === marker).map((a) => a.index ?? 0).sort((a, b) => b - a);
      for (const index of instances) {
        try {
          await write(`deleting ${marker} of ${uid}`, (client) => client.deleteAttribute(uid, marker, index));
        } catch (error) {
          const refusedDelete = refusal(error);
          if (!refusedDelete) throw error;
          // Not a problem of the entry: the pool keeps its own record that the key is taken.
          this.log.warn({ event: 'pool_marker_kept', uid, reason: refusedDelete.message }, 'the key server refused to delete the pool marker of a taken key');
          unmarked = false;
        }
      }
    }

    const heldValues = (name: string): string[] => held.filter((a) => a.name === name).map((a) => valueKey(a.value));
    const names = new Set(held.filter((a) => a.name === 'Name').map(nameText));
    // Instances already counted against the ones asked for, per attribute and value.
    const counted = new Map<string, number>();
    for (const attribute of entry.attributes) {
      const what = `writing ${attribute.name} of ${uid}`;
      try {
        if (attribute.name === 'Name') {
          const text = nameText(attribute);
          if (names.has(text)) continue; // on this key already: done
          const holders = (await up(`locating the name of ${uid}`, (client) => client.locateAll({ attributes: [{ name: 'Name', value: attribute.value! }] }))).filter((other) => other !== uid);
          if (holders.length > 0) {
            problems.push({ kind: 'name_taken', attribute: 'Name', ...(text !== undefined && { value: text }), takenBy: holders[0]!, reason: `the key server holds the Name on ${holders.join(', ')}`, at: at() });
            continue;
          }
          await write(what, (client) => client.addAttribute(uid, { name: 'Name', value: attribute.value! }));
          names.add(text);
        } else if (multiInstance(attribute.name)) {
          const key = `${attribute.name}\u0000${valueKey(attribute.value)}`;
          const already = counted.get(key) ?? 0;
          const present = heldValues(attribute.name).filter((v) => v === valueKey(attribute.value)).length;
          counted.set(key, already + 1);
          if (already < present) continue; // this instance is there already
          await write(what, (client) => client.addAttribute(uid, { name: attribute.name, ...(attribute.value && { value: attribute.value }) }));
        } else {
          const present = heldValues(attribute.name);
          if (present.includes(valueKey(attribute.value))) continue;
          if (present.length > 0) await write(what, (client) => client.modifyAttribute(uid, { name: attribute.name, ...(attribute.value && { value: attribute.value }) }));
          else await write(what, (client) => client.addAttribute(uid, { name: attribute.name, ...(attribute.value && { value: attribute.value }) }));
        }
      } catch (error) {
        const refusedWrite = refusal(error);
        if (!refusedWrite) throw error;
        refused(attribute.name, refusedWrite, attribute.name === 'Name' ? nameText(attribute) : undefined);
      }
    }

    if (entry.activate) {
      const state = held.find((a) => a.name === 'State')?.value?.value;
      // Active already: done (KMIP 1.2 §4.19 refuses a second Activate).
      if (state === State.PreActive) {
        try {
          await write(`activating ${uid}`, (client) => client.activate(uid));
        } catch (error) {
          const refusedActivate = refusal(error);
          if (!refusedActivate) throw error;
          refused('Activate', refusedActivate);
        }
      } else if (state !== State.Active) {
        problems.push({ kind: 'refused', attribute: 'Activate', reason: `the key is in state ${String(state)} on the key server, not Pre-Active`, at: at() });
      }
    }
    return { problems, unmarked };
  }

  /**
   * The key server holds what the entry asks: the cache learns the key's attributes and lease
   * from it (the offline metadata — Active with no lease limit — is replaced by the server's),
   * and the entry is deleted in the same synced batch.
   */
  private async finish(entry: OutboxEntry, unmarked: boolean): Promise<void> {
    const { uid } = entry;
    const up = this.options.upstream;
    const attributes = (await up(`reading attributes of ${uid}`, (client) => client.getAttributes(uid))).attributes;
    let lease: Attribute[] = [];
    try {
      const { leaseTime } = await up(`a lease on ${uid}`, (client) => client.obtainLease(uid));
      lease = [{ name: 'Lease Time', value: interval(Tag.AttributeValue, leaseTime) }];
    } catch (error) {
      if (!refusal(error)) throw error; // refused (not Active): the cache keeps the lease it had
    }
    const done: BatchOperation[] = [{ type: 'del', key: entryKey(entry.seq) }, ...(this.options.alongsideDone?.(entry, unmarked) ?? [])];
    await this.options.cache.applyNotify(uid, [...attributes, ...lease], () => done);
    this.entries.delete(entry.seq);
    this.log.info({ event: 'outbox_drained', clientId: entry.clientId, uid, names: entry.attributes.filter((a) => a.name === 'Name').map(nameText), activated: entry.activate },
      'offline Create written to the key server');
  }
}
