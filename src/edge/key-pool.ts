/**
 * The key pool of offline Create (issue #16): per local client template (algorithm, length, usage
 * mask, object group) the agent keeps `size` keys created on the key server ahead of need, each
 * fetched into the cache (sealed in the store like every key) before its pool record is written.
 * A Create that arrives while the key server is unreachable takes one: the requested attributes
 * are applied to the cached metadata and, in ONE synced batch, the pool record is deleted, a
 * taken record and the outbox entry (outbox.ts) are written and the metadata updated — before the
 * identifier is returned, so the answer only ever names a key that is durably taken.
 *
 * Never the same key twice. In one process a take claims its key synchronously (shift from the
 * ready list, no await in between), so concurrent takes cannot meet. Across SIGKILL: the pool
 * record goes in the same batch that writes the taken record, so after a restart a key is either
 * still pooled (its take never committed: no answer was sent) or taken, never both.
 *
 * Fills are crash-safe by finding keys again: every pooled key carries a marker attribute
 * (`x-kmip-edge-pool`: this agent's pool id, the client, the template) set by the Create itself.
 * A key created upstream whose pool record was not written — SIGKILL between Create and the
 * record, a Create whose answer was lost — is found by the next fill (Locate by the marker,
 * KMIP 1.2 §4.9) and adopted if it is still unused: marker there, Pre-Active, no Name, and not
 * known here as pooled or taken. A key is known as taken from its take until the key server has
 * confirmed that the marker is gone (the drain deletes it first; the taken record goes with the
 * outbox entry only then), so a taken key is never adopted back. A server that cannot Locate by
 * the marker leaves such keys as harmless orphans: Pre-Active, unnamed, never handed out.
 *
 * The caller starts the periodic sync (drain the outbox, then fill), wakes it after a successful
 * upstream call, and reads `status()` for `kmip-edge status`.
 */
import { isoTime } from '../iso-time.ts';
import { createHash, randomBytes } from 'node:crypto';
import type { AgentCore } from '../agent/agent-core.ts';
import { KmipEdgeError } from '../errors.ts';
import { Lanes } from '../lanes.ts';
import { nameValue, type Attribute } from '../kmip/attributes.ts';
import { KmipResultError } from '../kmip/message.ts';
import { CryptographicUsageMask, ObjectType, State, Tag } from '../kmip/tables.generated.ts';
import { silentLogger, type Logger } from '../log.ts';
import type { BatchOperation } from '../store/kv-store.ts';
import { dateTime, enumeration, integer, interval, textString } from '../ttlv/build.ts';
import { nameText, Outbox, type DrainReport, type UpstreamCall, type OutboxEntryView, type OutboxProblem } from './outbox.ts';
import type { LocalClient, OfflineCreateRequest, OfflineCreator, PoolTemplate } from './principal.ts';

/** The marker attribute every pooled key is created with (a custom attribute, KMIP 1.2 §3.1.1). */
export const POOL_MARKER = 'x-kmip-edge-pool';
const AGENT_ID = 'edge/pool/agent-id';
/** A pooled key: edge/pool/key/CLIENT/TEMPLATE/UID (components URI-encoded). */
export const POOL_KEYS = 'edge/pool/key/';
/** A taken key whose marker the key server may still hold: edge/pool/taken/UID. */
export const POOL_TAKEN = 'edge/pool/taken/';

/** PoolTemplate.usageMask undefined (principal.ts). */
export const DEFAULT_USAGE_MASK = CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt;

/**
 * Attributes a Create may carry that the pooled key already has from its template or that only
 * the key server sets (KMIP 1.2 §3, "Modifiable by client: No"): not applied, not written.
 */
const NOT_WRITTEN = new Set([
  'Unique Identifier', 'Object Type', 'Cryptographic Algorithm', 'Cryptographic Length', 'Cryptographic Usage Mask', 'State',
  'Initial Date', 'Last Change Date', 'Lease Time', 'Digest', 'Destroy Date', 'Compromise Date', 'Compromise Occurrence Date',
  'Revocation Reason', 'Archive Date', 'Fresh', 'Key Value Present', 'Original Creation Date', POOL_MARKER,
]);

export type PoolClient = Pick<LocalClient, 'id' | 'pool'>;

export interface KeyPoolOptions {
  agent: Pick<AgentCore, 'store' | 'cache' | 'upstream'>;
  /** The registered local clients and their templates, asked on each fill and take. */
  clients: () => readonly PoolClient[] | Promise<readonly PoolClient[]>;
  log?: Logger;
  now?: () => Date;
  /** Back-off of the periodic sync after a failure (offline, no answer): from minMs, doubling, to maxMs. */
  backoff?: { minMs?: number; maxMs?: number };
}

export interface PoolTemplateStatus {
  clientId: string;
  templateId: string;
  algorithm: number;
  length: number;
  usageMask: number;
  objectGroup: string | null;
  /** Keys wanted (0: the template is no longer configured; its keys stay, unused). */
  size: number;
  ready: number;
}

export interface KeyPoolStatus {
  templates: PoolTemplateStatus[];
  outbox: { pending: number; conflicted: number; entries: OutboxEntryView[] };
  lastSync: { at: string; drained: number; conflicted: number; created: number; adopted: number; dropped: number; error: { code: string; reason: string } | null } | null;
}

export interface SyncReport extends DrainReport {
  created: number;
  adopted: number;
  /** Pooled keys found in use on the key server by the first pass after open, and dropped. */
  dropped: number;
  /** The failure that ended the pass early (retried with back-off). */
  error?: { code: string; reason: string };
}

interface PoolRecord {
  uid: string;
  clientId: string;
  templateId: string;
  template: Omit<PoolTemplate, 'size'>;
  addedAt: string;
}

const enc = encodeURIComponent;
const recordKeyOf = (record: Pick<PoolRecord, 'clientId' | 'templateId' | 'uid'>): string => POOL_KEYS + [enc(record.clientId), record.templateId, enc(record.uid)].join('/');
const takenRecord = (uid: string, clientId: string, at: string): BatchOperation => ({ type: 'put', key: POOL_TAKEN + enc(uid), value: new Uint8Array(Buffer.from(JSON.stringify({ clientId, at }))) });

/** Unused on the key server: this pool's marker, Pre-Active, no Name — as a fill left it. */
function unusedUpstream(attributes: readonly Attribute[], marker: string): boolean {
  return attributes.some((a) => a.name === POOL_MARKER && a.value?.value === marker) &&
    attributes.find((a) => a.name === 'State')?.value?.value === State.PreActive &&
    !attributes.some((a) => a.name === 'Name');
}

/** A template's identity: what the keys are, not how many (a new size keeps the keys). */
export function templateId(template: Omit<PoolTemplate, 'size'>): string {
  const canonical = JSON.stringify([template.algorithm, template.length, template.usageMask ?? DEFAULT_USAGE_MASK, template.objectGroup ?? null]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/**
 * The client's templates a request fits, best first: each field the request names equals the
 * template's (an unnamed one takes the template's); an Object Group asked of a template that has
 * none is added to the key (Object Group is the client's to set, KMIP 1.2 §3.33), an exact group
 * is preferred.
 */
export function matchingTemplates(pool: readonly PoolTemplate[], request: Pick<OfflineCreateRequest, 'algorithm' | 'length' | 'usageMask' | 'objectGroup'>): PoolTemplate[] {
  const fits = pool.filter((t) =>
    t.size > 0 &&
    (request.algorithm === undefined || request.algorithm === t.algorithm) &&
    (request.length === undefined || request.length === t.length) &&
    (request.usageMask === undefined || request.usageMask === (t.usageMask ?? DEFAULT_USAGE_MASK)) &&
    (request.objectGroup === undefined || t.objectGroup === undefined || t.objectGroup === request.objectGroup));
  return [...fits.filter((t) => t.objectGroup === request.objectGroup), ...fits.filter((t) => t.objectGroup !== request.objectGroup)];
}

function errorSummary(error: unknown): { code: string; reason: string } {
  return { code: (error as { code?: string }).code ?? 'INTERNAL', reason: (error as Error).message };
}

export class KeyPool implements OfflineCreator {
  /** Ready keys per client and template (`${clientId}\n${templateId}`), oldest first. */
  private readonly ready = new Map<string, string[]>();
  /** Store key of each pooled key's record. */
  private readonly records = new Map<string, PoolRecord>();
  /** Keys this pool knows (pooled, taken, being recorded or taken now): never adopted. */
  private readonly claimed = new Set<string>();
  private readonly log: Logger;
  private readonly now: () => Date;
  /** Passes (sync, fill) one at a time: a fill never meets a drain. */
  private readonly passes = new Lanes();
  private running: Promise<SyncReport> | undefined;
  private again: Promise<SyncReport> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private intervalMs = 30_000;
  private delayMs = 0;
  private started = false;
  private last: KeyPoolStatus['lastSync'] = null;
  /** The pooled keys were checked with the key server since open (verifyPooled). */
  private verified = false;

  private constructor(
    private readonly options: KeyPoolOptions,
    /** This agent's pool id (random, in the store): two agents of one key server never adopt each other's keys. */
    readonly agentId: string,
    readonly outbox: Outbox,
  ) {
    this.log = options.log ?? silentLogger;
    this.now = options.now ?? (() => new Date());
  }

  static async open(options: KeyPoolOptions): Promise<KeyPool> {
    const { store, cache } = options.agent;
    const stored = await store.get(AGENT_ID);
    let agentId = stored && Buffer.from(stored).toString();
    if (!agentId) {
      agentId = randomBytes(8).toString('hex');
      await store.commit([{ type: 'put', key: AGENT_ID, value: new Uint8Array(Buffer.from(agentId)) }]);
    }
    const outbox = await Outbox.load({
      store,
      cache,
      upstream: (what, call) => options.agent.upstream(what, call),
      ...(options.log && { log: options.log }),
      ...(options.now && { now: options.now }),
      unmark: POOL_MARKER,
      alongsideDone: (entry, unmarked) => (unmarked ? [{ type: 'del', key: POOL_TAKEN + enc(entry.uid) }] : []),
    });
    const pool = new KeyPool(options, agentId, outbox);
    const records: PoolRecord[] = [];
    for await (const [, value] of store.entries(POOL_KEYS)) records.push(JSON.parse(Buffer.from(value).toString()) as PoolRecord);
    records.sort((a, b) => (a.addedAt < b.addedAt ? -1 : a.addedAt > b.addedAt ? 1 : 0)); // ISO 8601 UTC text sorts as the times do (no localeCompare: ICU data, src/iso-time.ts)
    for (const record of records) {
      pool.records.set(record.uid, record);
      pool.claimed.add(record.uid);
      pool.readyList(record.clientId, record.templateId).push(record.uid);
    }
    for await (const [key] of store.entries(POOL_TAKEN)) pool.claimed.add(decodeURIComponent(key.slice(POOL_TAKEN.length)));
    return pool;
  }

  /** A call to the key server behind the agent's breaker. */
  private readonly upstream: UpstreamCall = (what, call) => this.options.agent.upstream(what, call);

  private readyList(clientId: string, id: string): string[] {
    const key = `${clientId}\n${id}`;
    let list = this.ready.get(key);
    if (!list) this.ready.set(key, (list = []));
    return list;
  }

  private markerValue(clientId: string, id: string): string {
    return `${this.agentId} ${clientId} ${id}`;
  }

  // -------------------------------------------------------------------------------------------
  // Offline Create

  /** Whether `uid` is pooled and not yet handed out (OfflineCreator.holds: no client may see it). */
  holds(uid: string): boolean {
    return this.records.has(uid);
  }

  /**
   * One pooled key for `request`, taken durably, with the requested attributes applied to its
   * cached metadata; undefined when no template of the client fits or its pool is empty.
   * Rejects (nothing taken) when the store cannot be written.
   */
  async takeOffline(request: OfflineCreateRequest): Promise<string | undefined> {
    const client = (await this.options.clients()).find((c) => c.id === request.clientId);
    for (const template of matchingTemplates(client?.pool ?? [], request)) {
      const id = templateId(template);
      const ready = this.readyList(request.clientId, id);
      while (ready.length > 0) {
        const uid = ready.shift()!; // claimed here, before any await: no other take can have it
        if (await this.handOut(uid, template, request, ready)) return uid;
      }
    }
    this.log.warn({ event: 'pool_empty', clientId: request.clientId, algorithm: request.algorithm, length: request.length, usageMask: request.usageMask, objectGroup: request.objectGroup, templates: client?.pool.length ?? 0 },
      'offline Create: no pooled key fits (no template matches, or its pool is empty)');
    return undefined;
  }

  /** Records the take of `uid`; false when its key is no longer in the cache (the record is dropped, the key found again by a fill). */
  private async handOut(uid: string, template: PoolTemplate, request: OfflineCreateRequest, ready: string[]): Promise<boolean> {
    const record = this.records.get(uid)!;
    const recordKey = recordKeyOf(record);
    const at = this.now();
    const cached = await this.options.agent.cache.cached(uid);
    const upstream = upstreamAttributes(template, request);
    const { entry, operations } = this.outbox.prepare({ clientId: request.clientId, uid, takenAt: isoTime(at), attributes: upstream, activate: request.activate });
    let missing = cached === undefined;
    const taken: BatchOperation[] = [
      { type: 'del', key: recordKey },
      takenRecord(uid, request.clientId, entry.takenAt),
      ...operations,
      // The caller's own records of this take (the creator's visibility of the key) in the same synced batch.
      ...(request.alongside?.(uid) ?? []),
    ];
    try {
      if (cached === undefined) await this.options.agent.store.commit([{ type: 'del', key: recordKey }]);
      else {
        await this.options.agent.cache.applyNotify(uid, localAttributes(cached.metadata, upstream, request.activate, at), (metadata) => {
          missing = metadata === undefined;
          return missing ? [{ type: 'del', key: recordKey }] : taken;
        });
      }
    } catch (error) {
      ready.unshift(uid); // not taken: still pooled, on disk and here
      throw error;
    }
    this.records.delete(uid);
    if (missing) {
      this.claimed.delete(uid);
      this.log.warn({ event: 'pool_key_missing', clientId: request.clientId, uid }, 'a pooled key is no longer in the cache: dropped from the pool (a fill finds it again)');
      return false;
    }
    this.outbox.added(entry);
    this.log.info({ event: 'pool_key_taken', clientId: request.clientId, uid, templateId: record.templateId, names: upstream.filter((a) => a.name === 'Name').map(nameText), activate: request.activate, ready: ready.length },
      'offline Create answered from the key pool');
    this.wake(); // refill, and write the outbox entry, as soon as the key server answers
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // Fill and drain

  /**
   * One pass: the outbox drained, then every template filled to its size. One pass at a time; a
   * call while one runs gets the next pass (it may have missed what changed since). Never rejects:
   * a failure ends the pass and is in the report.
   */
  sync(): Promise<SyncReport> {
    if (!this.running) {
      this.running = this.syncOnce().finally(() => (this.running = undefined));
      return this.running;
    }
    this.again ??= this.running.then(() => {
      this.again = undefined;
      return this.sync();
    });
    return this.again;
  }

  /** Every template filled to its size, the outbox left as it is (one pass at a time with sync). */
  fill(): Promise<SyncReport> {
    return this.passes.run('pass', () => this.pass(false));
  }

  private syncOnce(): Promise<SyncReport> {
    return this.passes.run('pass', () => this.pass(true));
  }

  private async pass(drain: boolean): Promise<SyncReport> {
    const report: SyncReport = { drained: 0, conflicted: 0, created: 0, adopted: 0, dropped: 0 };
    try {
      if (drain) Object.assign(report, await this.outbox.drain());
      if (!this.verified) report.dropped = await this.verifyPooled();
      for (const client of await this.options.clients()) {
        for (const template of client.pool) {
          if (template.size <= 0) continue;
          try {
            const filled = await this.fillTemplate(client.id, template);
            report.created += filled.created;
            report.adopted += filled.adopted;
          } catch (error) {
            if (!(error instanceof KmipResultError)) throw error;
            this.log.warn({ event: 'pool_fill_refused', clientId: client.id, templateId: templateId(template), reason: error.message }, 'the key server refused a pooled key for this template');
          }
        }
      }
    } catch (error) {
      report.error = errorSummary(error);
      this.log.debug({ event: 'pool_sync_failed', ...report.error }, 'key pool sync ended early; retried later');
    }
    this.last = { at: isoTime(this.now()), drained: report.drained, conflicted: report.conflicted, created: report.created, adopted: report.adopted, dropped: report.dropped, error: report.error ?? null };
    return report;
  }

  private async fillTemplate(clientId: string, template: PoolTemplate): Promise<{ created: number; adopted: number }> {
    const id = templateId(template);
    const ready = this.readyList(clientId, id);
    const filled = { created: 0, adopted: 0 };
    if (ready.length >= template.size) return filled;
    const up = this.upstream;
    const marker = { name: POOL_MARKER, value: textString(Tag.AttributeValue, this.markerValue(clientId, id)) };
    let found: string[] = [];
    try {
      found = await up(`locating the pooled keys of ${clientId}`, (client) => client.locateAll({ attributes: [marker] }));
    } catch (error) {
      if (!(error instanceof KmipResultError)) throw error;
      this.log.warn({ event: 'pool_locate_refused', clientId, templateId: id, reason: error.message }, 'the key server cannot locate pooled keys by their marker: keys whose pool record was lost stay unused upstream');
    }
    for (const uid of found) {
      if (this.claimed.has(uid)) continue;
      if (await this.adopt(clientId, id, template, uid)) filled.adopted++;
    }
    // At most the keys missing when the pass began: takes meanwhile wait for the next pass, so
    // that a pass ends (and the next one drains first) however fast keys are taken.
    for (let missing = template.size - ready.length; missing > 0 && ready.length < template.size; missing--) {
      const attributes: Attribute[] = [
        { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, template.algorithm) },
        { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, template.length) },
        { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, template.usageMask ?? DEFAULT_USAGE_MASK) },
        ...(template.objectGroup !== undefined ? [{ name: 'Object Group', value: textString(Tag.AttributeValue, template.objectGroup) }] : []),
        marker,
      ];
      const uid = await up(`creating a pooled key for ${clientId}`, (client) => client.create(ObjectType.SymmetricKey, attributes));
      await this.record(clientId, id, template, uid);
      filled.created++;
    }
    if (filled.created + filled.adopted > 0) this.log.info({ event: 'pool_filled', clientId, templateId: id, ...filled, ready: ready.length, size: template.size }, 'key pool filled');
    return filled;
  }

  /**
   * Once per open, on the first pass that reaches the key server: is every pooled key still unused
   * there? One that an operator named, activated, revoked or destroyed meanwhile — or one handed
   * out after the backup this store was restored from, and written upstream since — is dropped
   * from the pool and kept as taken (never pooled again).
   */
  private async verifyPooled(): Promise<number> {
    let dropped = 0;
    for (const record of [...this.records.values()]) {
      let attributes: Attribute[] | undefined;
      try {
        attributes = (await this.upstream(`reading attributes of ${record.uid}`, (client) => client.getAttributes(record.uid))).attributes;
      } catch (error) {
        if (!(error instanceof KmipResultError)) throw error; // offline: the check waits for a later pass
        // refused (Item Not Found): gone from the key server
      }
      if (attributes && unusedUpstream(attributes, this.markerValue(record.clientId, record.templateId))) continue;
      const ready = this.readyList(record.clientId, record.templateId);
      const at = ready.indexOf(record.uid);
      if (at < 0) continue; // taken meanwhile
      ready.splice(at, 1); // before the await: no take gets it now
      try {
        await this.options.agent.store.commit([{ type: 'del', key: recordKeyOf(record) }, takenRecord(record.uid, record.clientId, isoTime(this.now()))]);
      } catch (error) {
        ready.unshift(record.uid);
        throw error;
      }
      this.records.delete(record.uid);
      this.log.warn({ event: 'pool_key_dropped', clientId: record.clientId, uid: record.uid, found: attributes !== undefined }, 'a pooled key is in use (or gone) on the key server: dropped from the pool');
      dropped++;
    }
    this.verified = true;
    return dropped;
  }

  /** A key of this pool found upstream without a pool record: taken into the pool if still unused. */
  private async adopt(clientId: string, id: string, template: PoolTemplate, uid: string): Promise<boolean> {
    this.claimed.add(uid);
    try {
      const { attributes } = await this.upstream(`reading attributes of ${uid}`, (client) => client.getAttributes(uid));
      const state = attributes.find((a) => a.name === 'State')?.value?.value;
      const unused = unusedUpstream(attributes, this.markerValue(clientId, id));
      if (!unused) {
        this.claimed.delete(uid);
        this.log.info({ event: 'pool_key_not_adopted', clientId, uid, state }, 'a key with this pool\'s marker is in use upstream: left alone');
        return false;
      }
    } catch (error) {
      this.claimed.delete(uid);
      if (error instanceof KmipResultError) return false; // gone meanwhile
      throw error;
    }
    await this.record(clientId, id, template, uid, true);
    this.log.info({ event: 'pool_key_adopted', clientId, uid, templateId: id }, 'a pooled key whose record was lost is in the pool again');
    return true;
  }

  /** Fetched into the cache (sealed in the store), then recorded as pooled, then ready. */
  private async record(clientId: string, id: string, template: PoolTemplate, uid: string, claimedAlready = false): Promise<void> {
    if (!claimedAlready) this.claimed.add(uid);
    try {
      const key = await this.options.agent.cache.get(uid);
      if (key.metadata.algorithm !== template.algorithm || key.metadata.length !== template.length) {
        throw new KmipEdgeError('POOL_KEY_MISMATCH', `the key server created ${uid} as algorithm ${key.metadata.algorithm} length ${key.metadata.length}, the template asks ${template.algorithm}/${template.length}`);
      }
      const record: PoolRecord = {
        uid, clientId, templateId: id,
        template: { algorithm: template.algorithm, length: template.length, usageMask: template.usageMask ?? DEFAULT_USAGE_MASK, objectGroup: template.objectGroup },
        addedAt: isoTime(this.now()),
      };
      await this.options.agent.store.commit([{ type: 'put', key: recordKeyOf(record), value: new Uint8Array(Buffer.from(JSON.stringify(record))) }]);
      this.records.set(uid, record);
      this.readyList(clientId, id).push(uid);
    } catch (error) {
      this.claimed.delete(uid); // not pooled: the next fill may find it again
      throw error;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Schedule

  /** Syncs now and then every `intervalMs`; after a failed pass sooner, with back-off. */
  start(intervalMs = 30_000): void {
    this.intervalMs = intervalMs;
    if (this.started) return;
    this.started = true;
    this.schedule(0);
  }

  /** Stops the periodic sync and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.started = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.again?.catch(() => undefined);
    await this.running?.catch(() => undefined);
  }

  /** A pass soon (after a take, or when the key server answered again); nothing when not started. */
  wake(): void {
    if (!this.started) return;
    if (this.running) void this.sync(); // one more pass after the one running: it may have missed the change
    else this.schedule(0);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const report = await this.sync();
    if (!this.started) return;
    const { minMs = 1000, maxMs = 60_000 } = this.options.backoff ?? {};
    this.delayMs = report.error ? Math.min(maxMs, this.delayMs === 0 ? minMs : this.delayMs * 2) : 0;
    this.schedule(report.error ? this.delayMs : this.intervalMs);
  }

  // -------------------------------------------------------------------------------------------
  // Status and the operator's decisions

  async status(): Promise<KeyPoolStatus> {
    const templates: PoolTemplateStatus[] = [];
    const listed = new Set<string>();
    for (const client of await this.options.clients()) {
      for (const template of client.pool) {
        const id = templateId(template);
        listed.add(`${client.id}\n${id}`);
        templates.push({ clientId: client.id, templateId: id, algorithm: template.algorithm, length: template.length, usageMask: template.usageMask ?? DEFAULT_USAGE_MASK, objectGroup: template.objectGroup ?? null, size: template.size, ready: this.readyList(client.id, id).length });
      }
    }
    // Keys pooled for a template no longer configured: shown, so that they are not forgotten.
    for (const record of this.records.values()) {
      const key = `${record.clientId}\n${record.templateId}`;
      if (listed.has(key)) continue;
      listed.add(key);
      const { template } = record;
      templates.push({ clientId: record.clientId, templateId: record.templateId, algorithm: template.algorithm, length: template.length, usageMask: template.usageMask ?? DEFAULT_USAGE_MASK, objectGroup: template.objectGroup ?? null, size: 0, ready: this.readyList(record.clientId, record.templateId).length });
    }
    const entries = this.outbox.views();
    return { templates, outbox: { pending: entries.length, conflicted: entries.filter((e) => e.problems.length > 0).length, entries }, lastSync: this.last };
  }

  conflicts(): OutboxEntryView[] {
    return this.outbox.conflicts();
  }

  /**
   * What a local client asked of a key taken offline and not yet on the key server (its `x-`
   * attributes, which the cache's metadata does not hold): for answering Get Attributes and
   * Locate offline. Undefined once the key server holds them.
   */
  pendingAttributes(uid: string): Attribute[] | undefined {
    return this.outbox.entryOf(uid)?.attributes;
  }

  /** An operator retries a conflicted entry (after freeing the name upstream): written on the next pass. */
  async retry(seq: number): Promise<void> {
    await this.outbox.retry(seq);
    this.wake();
  }

  /** An operator gives up a conflicted entry: its attributes are not written; the key stays taken. */
  discard(seq: number): Promise<OutboxEntryView> {
    return this.outbox.discard(seq);
  }
}

/**
 * What the key server is to hold for this take: the requested attributes the pooled key does not
 * fix, and the Object Group asked for when the template has none. Activate supersedes an
 * Activation Date (the drain activates the key).
 */
function upstreamAttributes(template: PoolTemplate, request: OfflineCreateRequest): Attribute[] {
  const attributes = request.attributes.filter((a) => a.value !== undefined && !NOT_WRITTEN.has(a.name) && !(request.activate && a.name === 'Activation Date'));
  const groups = new Set(attributes.filter((a) => a.name === 'Object Group').map((a) => a.value!.value));
  if (request.objectGroup !== undefined && template.objectGroup === undefined && !groups.has(request.objectGroup)) {
    attributes.push({ name: 'Object Group', value: textString(Tag.AttributeValue, request.objectGroup) });
  }
  // Drop a requested group equal to the template's: the key has it already.
  return attributes.filter((a) => !(a.name === 'Object Group' && a.value!.value === template.objectGroup));
}

/**
 * The cached metadata after the take, as attributes for the cache (applyAttributes): the names and
 * groups the key has plus the new ones (a Name or Object Group in the list replaces the cached
 * list), and for Activate: Active, an Activation Date of now, and no lease limit — the agent
 * activated the key itself, there is no key server lease to end; the drain replaces these with
 * the key server's own facts.
 */
function localAttributes(metadata: { names: string[]; objectGroups: string[] }, upstream: readonly Attribute[], activate: boolean, at: Date): Attribute[] {
  const local: Attribute[] = [];
  const names = upstream.filter((a) => a.name === 'Name');
  if (names.length > 0) local.push(...metadata.names.map((name) => ({ name: 'Name', value: nameValue(name) })), ...names);
  const groups = upstream.filter((a) => a.name === 'Object Group');
  if (groups.length > 0) local.push(...metadata.objectGroups.map((group) => ({ name: 'Object Group', value: textString(Tag.AttributeValue, group) })), ...groups);
  local.push(...upstream.filter((a) => a.name !== 'Name' && a.name !== 'Object Group'));
  if (activate) {
    local.push(
      { name: 'State', value: enumeration(Tag.AttributeValue, State.Active) },
      { name: 'Activation Date', value: dateTime(Tag.AttributeValue, at) },
      { name: 'Lease Time', value: interval(Tag.AttributeValue, 0) },
    );
  }
  return local;
}

export type { OutboxProblem };
