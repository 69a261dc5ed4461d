/**
 * The agent core (ARCHITECTURE.md layer 6): the API the device layer and the Put/Notify listener
 * call — get a key for a device and purpose, grant usage units, obtain a lease, apply Put and
 * Notify. It joins the store (LevelDB, group commit), the master key, the key cache, the ledger
 * and the upstream client behind a circuit breaker, so that with the upstream unreachable the
 * agent keeps serving what its cache, leases and allocations cover, and says exactly why not
 * otherwise (AGENT_OFFLINE, LEDGER_INSUFFICIENT, KEY_…).
 */
import { timingSafeEqual } from 'node:crypto';
import { KmipResultError } from '../kmip/message.ts';
import { keyBlockOf, keyMaterialOf } from '../kmip/payloads.ts';
import { KmipEdgeError } from '../errors.ts';
import { Lanes } from '../lanes.ts';
import { Tag } from '../kmip/tables.generated.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import { LevelStore, type BatchOperation } from '../store/kv-store.ts';
import { MasterKey } from '../store/master-key.ts';
import type { TtlvItem } from '../ttlv/item.ts';
import { findChild } from '../kmip/tree.ts';
import { silentLogger, type Logger } from '../log.ts';
import type { KmipClient } from '../upstream/client.ts';
import { NonceMacExchanger, type NonceSetter } from '../upstream/nonce-mac.ts';
import type { ResponseBatchItem } from '../kmip/message.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import { dataDir } from './data-dir.ts';
import { KeyCache, type AlongsideWrites, type CachedKey, type KeyMetadata } from './key-cache.ts';
import type { Push } from '../kmip/push.ts';
import type { Purpose } from './key-policy.ts';
import { Ledger, type GrantRecord, type LedgerOptions } from './ledger.ts';

const PUSH_SEEN = 'push/seen/';
const PUSH_SEEN_MAX_AGE_SECONDS = 30 * 24 * 3600;

function hasKeyBlock(object: TtlvItem): boolean {
  return findChild(object, Tag.KeyBlock) !== undefined;
}

export interface AgentCoreOptions {
  /** The data folder: store and master key (`--data DIR`). */
  data: string;
  log?: Logger;
  client: KmipClient;
  breaker?: CircuitBreaker;
  ledger?: Partial<Omit<LedgerOptions, 'store' | 'allocate'>>;
  now?: () => bigint;
  /**
   * Nonce-MAC cache fills (ARCHITECTURE.md §6): the Unique Identifier of the upstream's
   * HMAC-SHA256 key to use for every key (`defaultMacKey`) or for some (`perKey`: key → MAC key).
   */
  nonceMac?: NonceMacConfig;
  /** While the store cannot be written (disk full): how often it checks for space again. */
  storeProbeMs?: number;
}

export interface NonceMacConfig {
  defaultMacKey?: string;
  perKey?: Readonly<Record<string, string>>;
}

/** The MAC key for fetching `uid` with nonce-MAC, if configured; never for a MAC key itself. */
function macKeyFor(config: NonceMacConfig | undefined, uid: string): string | undefined {
  if (!config) return undefined;
  const macKeys = new Set([config.defaultMacKey, ...Object.values(config.perKey ?? {})]);
  if (macKeys.has(uid)) return undefined;
  return config.perKey?.[uid] ?? config.defaultMacKey;
}

export class AgentCore {
  private constructor(
    /** The agent's store: the device layer keeps its registry and counters here too. */
    readonly store: LevelStore,
    readonly masterKey: MasterKey,
    readonly cache: KeyCache,
    readonly ledger: Ledger,
    readonly breaker: CircuitBreaker,
    private readonly nonceMac: NonceMacExchanger,
    private readonly log: Logger,
    private readonly now: () => bigint,
    private readonly client: KmipClient,
  ) {}

  /**
   * A call to the upstream key server behind the circuit breaker (AGENT_OFFLINE while it is
   * open): for what the cache and the ledger do not cover — the local KMIP endpoint's writes
   * and Locate, and the key pool's fills (issue #16).
   */
  upstream<T>(what: string, call: (client: KmipClient) => Promise<T>): Promise<T> {
    return this.breaker.run(what, () => call(this.client));
  }

  /** Pushes are applied one at a time (one lane for all). */
  private readonly pushes = new Lanes();

  static async open(options: AgentCoreOptions): Promise<AgentCore> {
    const paths = dataDir(options.data, true);
    const masterKey = MasterKey.load(paths.masterKey);
    const log = options.log ?? silentLogger;
    const store = await LevelStore.open(paths.store, { log, ...(options.storeProbeMs !== undefined && { probeMs: options.storeProbeMs }) });
    const breaker = options.breaker ?? new CircuitBreaker();
    const { client } = options;
    const nonceMac = new NonceMacExchanger(client);
    const cache: KeyCache = new KeyCache(store, masterKey, {
      get: async (uid) => {
        const macUid = macKeyFor(options.nonceMac, uid);
        if (macUid === undefined) return breaker.run(`fetching key ${uid}`, () => client.get(uid));
        // The MAC key comes over the mutual-TLS channel once, and is cached sealed like any key.
        const macKey = (await cache.get(macUid)).material;
        return breaker.run(`fetching key ${uid} with nonce-MAC`, () => nonceMac.get(uid, macUid, macKey));
      },
      getAttributes: async (uid) => (await breaker.run(`reading attributes of ${uid}`, () => client.getAttributes(uid))).attributes,
      obtainLease: async (uid) => {
        try {
          return (await breaker.run(`a lease on ${uid}`, () => client.obtainLease(uid))).leaseTime;
        } catch (error) {
          if (error instanceof KmipResultError) return undefined; // refused (e.g. not Active): no lease
          throw error;
        }
      },
    }, options.now);
    const ledger = new Ledger({
      store,
      allocate: async (uid, count) => void (await breaker.run(`a usage allocation of ${uid}`, () => client.getUsageAllocation(uid, count))),
      ...options.ledger,
    });
    log.info({ data: options.data }, 'agent core open');
    return new AgentCore(store, masterKey, cache, ledger, breaker, nonceMac, log, options.now ?? (() => BigInt(Math.floor(Date.now() / 1000))), client);
  }

  /** The key `uid` for `device`, if its state, dates and lease allow `purpose` now. */
  async getKey(device: string, uid: string, purpose: Purpose): Promise<CachedKey> {
    try {
      const key = await this.cache.use(uid, purpose);
      // the hot path of every device Get: no record object unless it is written
      if (this.log.isLevelEnabled('debug')) this.log.debug({ device, uid, purpose, state: key.metadata.state }, 'key served');
      return key;
    } catch (error) {
      this.log.info({ device, uid, purpose, code: (error as { code?: string }).code, offline: this.breaker.offline }, 'key refused');
      throw error;
    }
  }

  /**
   * Grants `count` units of `uid` to `device` for its request `requestId` (idempotent), after
   * checking the key may protect now and, when the device names one, that the unit is the key's
   * Usage Limits Unit (bytes are not objects); durable before it resolves.
   */
  async grantUnits(device: string, requestId: string, uid: string, count: bigint, unit?: number): Promise<GrantRecord> {
    const key = await this.cache.use(uid, 'protect');
    if (key.metadata.usageLimitsUnit === undefined) throw new KmipEdgeError('LEDGER_NO_USAGE_LIMITS', `${uid} has no Usage Limits: there is nothing to allocate`);
    if (unit !== undefined && unit !== key.metadata.usageLimitsUnit) {
      throw new KmipEdgeError('LEDGER_UNIT_MISMATCH', `${uid} counts ${enumerationText(Tag.UsageLimitsUnit, key.metadata.usageLimitsUnit)}, the request counts ${enumerationText(Tag.UsageLimitsUnit, unit)}`);
    }
    try {
      const grant = await this.ledger.grant(uid, device, requestId, count);
      this.log.info({ device, uid, requestId, count: Number(count) }, 'units granted');
      return grant;
    } catch (error) {
      this.log.warn({ device, uid, requestId, count: Number(count), code: (error as { code?: string }).code, offline: this.breaker.offline }, 'units refused');
      throw error;
    }
  }

  /**
   * A device's own nonce-MAC exchange (ARCHITECTURE.md §6 (b)): its nonce set on `uid` and the
   * MAC-wrapped Get, sent upstream in one batch, queued behind any other nonce-MAC exchange of
   * the key; the server's two response items come back untouched, for the device to verify.
   */
  forwardNonceMac(device: string, uid: string, macKeyUid: string, nonce: Uint8Array, setter: NonceSetter): Promise<ResponseBatchItem[]> {
    this.log.info({ device, uid, macKeyUid, setter }, 'nonce-MAC exchange forwarded for a device');
    return this.breaker.run(`a nonce-MAC Get of ${uid}`, () => this.nonceMac.serialized(uid, () => this.nonceMac.exchange(uid, macKeyUid, nonce, setter)));
  }

  /** A fresh lease on `uid` from the upstream. */
  obtainLease(uid: string): Promise<KeyMetadata> {
    return this.cache.renewLease(uid);
  }

  /** Renews the leases ending within `marginSeconds`; failures (offline) are left for next time. */
  async renewLeases(marginSeconds: bigint): Promise<string[]> {
    const renewed: string[] = [];
    for (const uid of this.cache.dueForRenewal(marginSeconds)) {
      try {
        await this.cache.renewLease(uid);
        renewed.push(uid);
      } catch {
        // offline or refused: the key stays usable until its lease ends, then policy says no
      }
    }
    return renewed;
  }

  /**
   * Applies a server-initiated Put or Notify durably (ARCHITECTURE.md §3, invariant 6): the cache
   * change, the record that this push was applied, and `alongside` (the relay's outbox entries)
   * in one synced batch — resolved only then, so the caller acknowledges only what is on disk.
   * A push already applied (the server resent it) changes nothing and is reported 'duplicate'.
   * Pushes are applied one at a time, so a duplicate arriving meanwhile cannot slip through.
   */
  applyPush(push: Push, alongside: AlongsideWrites = () => []): Promise<'applied' | 'duplicate' | 'stale'> {
    return this.pushes.run('push', () => this.applyPushNow(push, alongside));
  }

  private async applyPushNow(push: Push, alongside: AlongsideWrites): Promise<'applied' | 'duplicate' | 'stale'> {
    const seenKey = PUSH_SEEN + push.digest;
    if (await this.store.get(seenKey)) {
      this.log.info({ operation: push.operation, uid: push.uniqueIdentifier }, 'push already applied: acknowledged again');
      return 'duplicate';
    }
    const seen = new Uint8Array(8);
    new DataView(seen.buffer).setBigUint64(0, this.now());
    const writes: AlongsideWrites = (metadata, changed) => [{ type: 'put', key: seenKey, value: seen }, ...alongside(metadata, changed)];
    if (push.operation === 'Notify') {
      let stale = false;
      const applied = await this.cache.applyNotify(push.uniqueIdentifier, push.attributes, (metadata, changed) => ((stale = !changed), writes(metadata, changed)));
      this.log.info({ uid: push.uniqueIdentifier, attributes: push.attributes.map((a) => a.name), cached: applied, stale }, 'notify applied');
      return stale ? 'stale' : 'applied';
    }
    if (!hasKeyBlock(push.object)) {
      await this.store.commit(writes(undefined, true)); // a certificate or opaque object: not a key the cache serves
      this.log.info({ uid: push.uniqueIdentifier }, 'put of an object that is not a key: acknowledged, not cached');
      return 'applied';
    }
    await this.refuseForeignMaterial(push.uniqueIdentifier, push.object);
    const key = await this.cache.applyPut(push.uniqueIdentifier, push.object, push.attributes, push.replaces, writes);
    this.log.info({ uid: push.uniqueIdentifier, replaces: push.replaces, names: key.metadata.names }, 'put applied');
    return 'applied';
  }

  /**
   * A key's material never changes under its Unique Identifier (KMIP 1.2 §3.1: the identifier is
   * the object's, and a new key is a new object — Re-key, or Put Replace with a new identifier,
   * §5.2). So a Put whose identifier the cache already holds with other material is no legitimate
   * flow — whoever sent it, the registered upstream included — and is refused, not applied and not
   * relayed (issue #13.4). The same material again (a resent or refreshed Put) is fine.
   */
  private async refuseForeignMaterial(uid: string, object: TtlvItem): Promise<void> {
    const held = await this.cache.cached(uid);
    if (!held) return;
    const pushed = keyMaterialOf(keyBlockOf(object));
    if (pushed.length === held.material.length && timingSafeEqual(pushed, held.material)) return;
    this.log.error({ event: 'push_foreign_material', uid }, 'Put refused: it carries other key material for a Unique Identifier the agent holds (never delivered to devices)');
    throw new KmipEdgeError('PUSH_FOREIGN_MATERIAL', `a Put of ${uid} carries other key material than the key held under that Unique Identifier; a new key needs a new identifier (Put Replace)`);
  }

  /** Forgets applied-push records older than `maxAgeSeconds` (a server resends within minutes, not weeks). */
  async prunePushRecords(maxAgeSeconds = PUSH_SEEN_MAX_AGE_SECONDS): Promise<number> {
    const old: BatchOperation[] = [];
    for await (const [key, value] of this.store.entries(PUSH_SEEN)) {
      if (this.now() - new DataView(value.buffer, value.byteOffset, 8).getBigUint64(0) > BigInt(maxAgeSeconds)) old.push({ type: 'del', key });
    }
    if (old.length > 0) await this.store.commit(old);
    return old.length;
  }

  listKeys(): Promise<KeyMetadata[]> {
    return this.cache.list();
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
