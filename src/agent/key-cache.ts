/**
 * The agent's key cache (ARCHITECTURE.md §3): keys fetched from the upstream (Get, Get
 * Attributes, Obtain Lease — one upstream fill shared by concurrent misses) and kept on disk:
 * the key material sealed under the master key, the metadata (state, dates, lease, names) in the
 * clear. Notify updates metadata, Put installs or replaces keys. Decisions use key-policy.ts.
 */
import { isoTime } from '../iso-time.ts';
import { timingSafeEqual } from 'node:crypto';
import { KmipEdgeError } from '../errors.ts';
import type { Attribute } from '../kmip/attributes.ts';
import { keyBlockOf, keyMaterialOf, objectTypeOfTag } from '../kmip/payloads.ts';
import { Tag } from '../kmip/tables.generated.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import type { BatchOperation, KeyValueStore } from '../store/kv-store.ts';
import type { MasterKey } from '../store/master-key.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { toHex } from '../ttlv/hex.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import { mayUse, type Decision, type KeyFacts, type Purpose } from './key-policy.ts';
import { observer } from '../metrics/observer.ts';

/** What the cache keeps about a key besides its material: safe to list and to log. */
export interface KeyMetadata extends KeyFacts {
  uniqueIdentifier: string;
  objectType: number;
  algorithm: number | undefined;
  length: number | undefined;
  usageMask: number | undefined;
  /** KMIP 1.2 §3.21 Usage Limits Unit (Byte 1, Object 2) when the key has Usage Limits. */
  usageLimitsUnit: number | undefined;
  names: string[];
  objectGroups: string[];
  lastChangeDate: bigint | undefined;
  /** Seconds since the epoch when the agent last heard from the upstream about this key. */
  refreshedAt: bigint;
  /**
   * Custom attributes (KMIP 1.2 §3.39: names starting `x-` or `y-`, e.g. a cartridge barcode):
   * name → the hex of each instance's Attribute Value in TTLV, by Attribute Index — for Locate
   * and Get Attributes while the key server is unreachable (issue #16). Absent in metadata
   * cached before.
   */
  customAttributes?: Record<string, string[]>;
  /** KMIP 1.2 §2.2.7 Secret Data Type, for Secret Data (served again by the edge KMIP service). */
  secretDataType?: number;
}

/** The upstream calls a fill needs (an adapter over KmipClient, behind the circuit breaker). */
export interface KeySource {
  get(uid: string): Promise<{ objectType: number; object: TtlvItem }>;
  getAttributes(uid: string): Promise<Attribute[]>;
  /** Lease Time in seconds (0: no limit); undefined when the upstream refuses a lease. */
  obtainLease(uid: string): Promise<number | undefined>;
}

const META = 'cache/meta/';
/** Refusals the key server may have lifted since the key was cached (decide). */
const RECHECKED = new Set(['KEY_LEASE_EXPIRED', 'KEY_NOT_ACTIVE', 'KEY_NOT_YET_ACTIVE', 'KEY_PROCESS_NOT_STARTED']);
/** A refused key is checked with the server at most this often (unless a push changed it). */
export const REFRESH_EVERY_MS = 5000;
const MATERIAL = 'cache/key/';

const DATE_ATTRIBUTES: Record<string, keyof KeyFacts> = {
  'Activation Date': 'activationDate',
  'Process Start Date': 'processStartDate',
  'Protect Stop Date': 'protectStopDate',
  'Deactivation Date': 'deactivationDate',
  'Compromise Date': 'compromiseDate',
};

function toJson(meta: KeyMetadata): Uint8Array {
  return new Uint8Array(Buffer.from(JSON.stringify(meta, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))));
}

function fromJson(bytes: Uint8Array): KeyMetadata {
  return JSON.parse(Buffer.from(bytes).toString(), (_k, v: unknown) => (typeof v === 'string' && /^-?\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v)) as KeyMetadata;
}

/** Applies attributes (from Get Attributes, Notify or Put) to metadata; no value = deleted. */
export function applyAttributes(meta: KeyMetadata, attributes: readonly Attribute[], now: bigint): void {
  const touched = new Set(attributes.map((a) => a.name));
  if (touched.has('Name')) meta.names = [];
  if (touched.has('Object Group')) meta.objectGroups = [];
  for (const name of touched) if (isCustomAttribute(name) && meta.customAttributes) delete meta.customAttributes[name];
  for (const { name, value } of attributes) {
    const v = value?.value;
    const dateField = DATE_ATTRIBUTES[name];
    if (dateField) (meta as unknown as Record<string, unknown>)[dateField] = typeof v === 'bigint' ? v : undefined;
    else if (name === 'State' && typeof v === 'number') meta.state = v;
    else if (name === 'Last Change Date' && typeof v === 'bigint') meta.lastChangeDate = v;
    else if (name === 'Cryptographic Algorithm' && typeof v === 'number') meta.algorithm = v;
    else if (name === 'Cryptographic Length' && typeof v === 'number') meta.length = v;
    else if (name === 'Cryptographic Usage Mask') meta.usageMask = typeof v === 'number' ? v : undefined;
    else if (name === 'Usage Limits') meta.usageLimitsUnit = value?.type === ItemType.Structure ? (value.value.find((c) => c.tag === Tag.UsageLimitsUnit)?.value as number | undefined) : undefined;
    else if (name === 'Object Group' && typeof v === 'string') meta.objectGroups.push(v);
    else if (name === 'Name' && value?.type === ItemType.Structure) {
      const text = value.value.find((c) => c.tag === Tag.NameValue)?.value;
      if (typeof text === 'string') meta.names.push(text);
    } else if (name === 'Lease Time' && typeof v === 'number') meta.leaseExpiresAt = v === 0 ? undefined : now + BigInt(v);
    else if (isCustomAttribute(name) && value !== undefined) ((meta.customAttributes ??= {})[name] ??= []).push(toHex(encodeTtlv(value)));
  }
}

/** KMIP 1.2 §3.39: a custom attribute's name starts with `x-` (client) or `y-` (server). */
export function isCustomAttribute(name: string): boolean {
  return name.startsWith('x-') || name.startsWith('y-');
}

/** Writes committed in the same synced batch as a cache change, given the metadata it leaves. */
export type AlongsideWrites = (metadata: KeyMetadata | undefined, changed: boolean) => BatchOperation[];

/** The Object Type of a managed object structure (by its tag, KMIP 1.2 §2.2). */
function objectTypeOf(object: TtlvItem): number {
  const type = objectTypeOfTag(object.tag);
  if (type === undefined) throw new KmipEdgeError('KMIP_MESSAGE_INVALID', `the cache holds keys and secret data, not the object with tag 0x${object.tag.toString(16)}`);
  return type;
}

export interface CachedKey {
  metadata: KeyMetadata;
  material: Uint8Array;
}

/*
 * The keys held in memory, compactly (issue #15 footprint: 10,000 keys within the agent's 80 MB).
 * A key as decoded keeps a view of the whole TLS read it came in (kilobytes for 32 bytes of
 * material) and metadata built up attribute by attribute (out-of-object properties, arrays with
 * room to grow, a BigInt per date) — ~2 kB a key. Held here, each key's material is copied into one
 * shared buffer (the slab) and its metadata rebuilt to exactly what it holds: ~0.4 kB a key.
 */

/** First size of the slab. */
const SLAB_START_BYTES = 16 * 1024;
const EMPTY = new Uint8Array(0);

/**
 * The material of every key held in memory, back to back in one buffer. Growing and compacting
 * write a new buffer and move every held key to it (so that no held key keeps an old one alive);
 * a view handed out earlier keeps the old buffer, which is not wiped for that reason: a request
 * in flight may still be reading it.
 */
class MaterialSlab {
  private bytes = new Uint8Array(SLAB_START_BYTES);
  private end = 0;
  /** Bytes of keys no longer held (replaced or removed), reclaimed by the next rewrite. */
  private released = 0;

  /** Copies `material` in for `key` (every key held is in `held`, for a rewrite). */
  write(key: HeldKey, material: Uint8Array, held: Iterable<HeldKey>): void {
    if (this.end + material.length > this.bytes.length) this.rewrite(held, material.length);
    key.bytes = this.bytes;
    key.at = this.end;
    this.bytes.set(material, this.end);
    this.end += material.length;
  }

  /** `key`'s bytes are no longer needed; when most of the buffer is such bytes, it is rewritten. */
  release(key: HeldKey, held: Iterable<HeldKey>): void {
    this.released += key.size;
    if (this.released > SLAB_START_BYTES && this.released * 2 > this.end) this.rewrite(held, 0);
  }

  /** Every held key into a new buffer with room for `more` bytes, without the released ones. */
  private rewrite(held: Iterable<HeldKey>, more: number): void {
    const keys = [...held];
    const live = keys.reduce((sum, key) => sum + key.size, 0);
    let size = SLAB_START_BYTES;
    while (size < 2 * (live + more)) size *= 2; // room to grow: rewrites stay rare
    const next = new Uint8Array(size);
    let end = 0;
    for (const key of keys) {
      next.set(key.material, end);
      key.bytes = next;
      key.at = end;
      end += key.size;
    }
    this.bytes = next;
    this.end = end;
    this.released = 0;
  }
}

/** Copies `key`'s material into `target` at `at`: from the slab directly for a key held here (no view made, the hot path), else from its material. */
export function copyMaterial(key: CachedKey, target: Uint8Array, at: number): void {
  if (!(key instanceof HeldKey)) return void target.set(key.material, at);
  for (let i = 0; i < key.size; i++) target[at + i] = key.bytes[key.at + i]!;
}

/** The length of `key`'s material, with no view made for a key held here. */
export function materialLength(key: CachedKey): number {
  return key instanceof HeldKey ? key.size : key.material.length;
}

/** A key held in memory: its metadata, and where its material is in the slab. */
class HeldKey implements CachedKey {
  /** When the server was last asked about this key (Date.now()), -1 never: decide's rate limit. */
  refreshedAtMs = -1;

  constructor(
    public metadata: KeyMetadata,
    public bytes: Uint8Array,
    public at: number,
    readonly size: number,
  ) {}

  /** A view of the material in the slab (not a copy: the hot path of device Gets). */
  get material(): Uint8Array {
    return this.bytes.subarray(this.at, this.at + this.size);
  }
}

/**
 * Recent BigInt values, shared: keys fetched in the same second have the same refresh time, keys
 * created together the same dates — one BigInt for all of them instead of one each.
 */
const NO_VALUES: never[] = Object.freeze([]) as unknown as never[];
const recentBigInts: (bigint | undefined)[] = new Array(256).fill(undefined);
function shared(value: bigint): bigint {
  const slot = Number(BigInt.asUintN(8, value));
  const known = recentBigInts[slot];
  if (known === value) return known;
  recentBigInts[slot] = value;
  return value;
}

/**
 * The metadata rebuilt to exactly what it holds: fields without a value left out (as the copy
 * read back from disk has them, JSON having no undefined), lists of exactly their length (an
 * empty one shared and frozen: changes go to a copy, applyAttributes works on a structuredClone),
 * dates shared. Any field, known here or not, is kept.
 */
function compactMetadata(meta: KeyMetadata): KeyMetadata {
  const out: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(meta)) {
    if (value === undefined) continue;
    out[field] = typeof value === 'bigint' ? shared(value) : Array.isArray(value) ? (value.length === 0 ? NO_VALUES : value.slice()) : value;
  }
  return out as unknown as KeyMetadata;
}

export class KeyCache {
  private readonly memory = new Map<string, HeldKey>();
  private readonly slab = new MaterialSlab();
  private readonly fills = new Map<string, Promise<CachedKey>>();
  /** Refreshes from the server in flight (decide). */
  private readonly refreshes = new Map<string, Promise<void>>();

  constructor(
    private readonly store: KeyValueStore,
    private readonly masterKey: MasterKey,
    private readonly source: KeySource,
    private readonly now: () => bigint = unixSeconds,
  ) {}

  /** The key, from memory, disk or the upstream (concurrent misses share one upstream fill). */
  async get(uid: string): Promise<CachedKey> {
    const known = this.memory.get(uid) ?? (await this.load(uid));
    observer.cacheLookup(known !== undefined);
    if (known) return known;
    let fill = this.fills.get(uid);
    if (!fill) {
      fill = this.fill(uid).finally(() => this.fills.delete(uid));
      this.fills.set(uid, fill);
    }
    return fill;
  }

  /** The key if the cache holds it (memory or disk); never asks the upstream. */
  async cached(uid: string): Promise<CachedKey | undefined> {
    return this.memory.get(uid) ?? (await this.load(uid));
  }

  /**
   * The key if it is in memory and policy allows `purpose` now; undefined otherwise (then `use`
   * says why, or fetches it). The hot path of device Gets: no promise.
   */
  useFromMemory(uid: string, purpose: Purpose): CachedKey | undefined {
    const key = this.memory.get(uid);
    if (!key || !mayUse(key.metadata, purpose, this.now()).allowed) return undefined;
    observer.cacheLookup(true);
    return key;
  }

  /** The key's material if policy allows `purpose` now; a coded error (KEY_…) otherwise. */
  async use(uid: string, purpose: Purpose): Promise<CachedKey> {
    const { key, decision } = await this.decide(uid, purpose);
    if (!decision.allowed) throw new KmipEdgeError(decision.code, `${uid}: ${decision.reason}`);
    return key;
  }

  /**
   * Whether policy allows `purpose` now. A refusal that the key server may since have lifted —
   * no current lease (a lease the agent can obtain: the key was Pre-Active when cached, and the
   * server refused it a lease then), or not Active (it may have been activated) — is checked
   * with the server first (Get Attributes + Obtain Lease), at most once per REFRESH_EVERY_MS per
   * key unless the cache learnt something new of it meanwhile (issue #12 §5: after `activate` a
   * key was refused KEY_LEASE_EXPIRED until some device sent Obtain Lease). Offline, the refusal
   * stands.
   */
  async decide(uid: string, purpose: Purpose): Promise<{ key: CachedKey; decision: Decision }> {
    let key = await this.get(uid);
    let decision = mayUse(key.metadata, purpose, this.now());
    if (!decision.allowed && RECHECKED.has(decision.code) && this.mayRefresh(uid)) {
      try {
        await this.refresh(uid);
        key = this.memory.get(uid) ?? key;
        decision = mayUse(key.metadata, purpose, this.now());
      } catch {
        // the server is unreachable or refuses: the cached facts decide
      }
    }
    return { key, decision };
  }

  private mayRefresh(uid: string): boolean {
    const last = this.memory.get(uid)?.refreshedAtMs ?? -1;
    return last < 0 || Date.now() - last >= REFRESH_EVERY_MS;
  }

  /** Attributes and a lease from the server (one at a time per key); the metadata recorded. */
  private refresh(uid: string): Promise<void> {
    let running = this.refreshes.get(uid);
    if (!running) {
      const held = this.memory.get(uid);
      if (held) held.refreshedAtMs = Date.now();
      running = (async () => {
        const attributes = await this.source.getAttributes(uid);
        const key = this.memory.get(uid) ?? (await this.load(uid));
        if (!key) return;
        const metadata = structuredClone(key.metadata);
        applyAttributes(metadata, attributes, this.now());
        const leaseTime = await this.source.obtainLease(uid);
        metadata.leaseExpiresAt = leaseTime === undefined ? this.now() : leaseTime === 0 ? undefined : this.now() + BigInt(leaseTime);
        metadata.refreshedAt = this.now();
        await this.store.commit([{ type: 'put', key: META + uid, value: toJson(metadata) }]);
        key.metadata = compactMetadata(metadata);
      })().finally(() => this.refreshes.delete(uid));
      this.refreshes.set(uid, running);
    }
    return running;
  }

  /** Metadata of every cached key, without key material (for listing). */
  list(): Promise<KeyMetadata[]> {
    return listCachedKeys(this.store);
  }

  /** Obtain Lease again for `uid` (lease renewal); records the new expiry. */
  async renewLease(uid: string): Promise<KeyMetadata> {
    const key = await this.get(uid);
    const leaseTime = await this.source.obtainLease(uid);
    key.metadata.leaseExpiresAt = leaseTime === undefined ? this.now() : leaseTime === 0 ? undefined : this.now() + BigInt(leaseTime);
    key.metadata.refreshedAt = this.now();
    await this.store.commit([{ type: 'put', key: META + uid, value: toJson(key.metadata) }]);
    return key.metadata;
  }

  /** Keys whose lease ends within `marginSeconds` (to renew before expiry). */
  dueForRenewal(marginSeconds: bigint): string[] {
    const horizon = this.now() + marginSeconds;
    return [...this.memory.values()].filter((k) => k.metadata.leaseExpiresAt !== undefined && k.metadata.leaseExpiresAt <= horizon).map((k) => k.metadata.uniqueIdentifier);
  }

  /**
   * Notify (KMIP 1.2 §5.1): changed attributes; ignored when older than what is cached. Returns
   * whether the cache changed. `withWrites` adds writes (push bookkeeping) to the same synced
   * batch; it gets the metadata after the change (undefined when the key is not cached) and
   * whether the Notify changed anything (false when stale).
   */
  async applyNotify(uid: string, attributes: readonly Attribute[], withWrites: AlongsideWrites = () => []): Promise<boolean> {
    const key = this.memory.get(uid) ?? (await this.load(uid));
    const changed = attributes.find((a) => a.name === 'Last Change Date')?.value?.value;
    if (!key) {
      await this.store.commit(withWrites(undefined, true)); // not a key this agent holds
      return false;
    }
    if (typeof changed === 'bigint' && key.metadata.lastChangeDate !== undefined && changed < key.metadata.lastChangeDate) {
      await this.store.commit(withWrites(key.metadata, false)); // older than what the cache knows
      return false;
    }
    const metadata = structuredClone(key.metadata);
    applyAttributes(metadata, attributes, this.now());
    metadata.refreshedAt = this.now();
    await this.store.commit([{ type: 'put', key: META + uid, value: toJson(metadata) }, ...withWrites(metadata, true)]);
    key.metadata = compactMetadata(metadata);
    key.refreshedAtMs = -1; // news from the server: a refusal may be checked again at once
    return true;
  }

  /**
   * Put (KMIP 1.2 §5.2): installs the object; a Replace retires the replaced key from the cache
   * (an unknown replaced key changes nothing: the Put is then a New). `withWrites` as for Notify.
   */
  async applyPut(uid: string, object: TtlvItem, attributes: readonly Attribute[], replaces?: string, withWrites: AlongsideWrites = () => []): Promise<CachedKey> {
    const key = this.record(uid, objectTypeOf(object), object, attributes);
    const operations = this.recordOperations(key);
    if (replaces !== undefined && replaces !== uid) operations.push({ type: 'del', key: META + replaces }, { type: 'del', key: MATERIAL + replaces });
    await this.store.commit([...operations, ...withWrites(key.metadata, true)]);
    if (replaces !== undefined && replaces !== uid) this.forget(replaces);
    return this.hold(uid, key.metadata, key.material); // not refreshed: a refusal may be checked again at once
  }

  /**
   * Forgets the key — material and metadata — in one synced batch with `alongside` (the key was
   * destroyed upstream: KMIP 1.2 §4.21, its material must not outlive it here).
   */
  async remove(uid: string, alongside: BatchOperation[] = []): Promise<void> {
    await this.store.commit([{ type: 'del', key: META + uid }, { type: 'del', key: MATERIAL + uid }, ...alongside]);
    this.forget(uid);
  }

  private async fill(uid: string): Promise<CachedKey> {
    const [got, attributes, leaseTime] = await Promise.all([this.source.get(uid), this.source.getAttributes(uid), this.source.obtainLease(uid)]);
    const key = this.record(uid, got.objectType, got.object, leaseTime === undefined ? attributes : [...attributes, { name: 'Lease Time', value: { tag: Tag.AttributeValue, type: ItemType.Interval, value: leaseTime } }]);
    if (leaseTime === undefined) key.metadata.leaseExpiresAt = this.now(); // refused: no lease to use it under
    await this.store.commit(this.recordOperations(key));
    const held = this.hold(uid, key.metadata, key.material);
    held.refreshedAtMs = Date.now(); // just asked the server
    return held;
  }

  /**
   * Holds the key in memory (material into the slab, metadata compacted), in place of what was
   * held under `uid`. A key's material never changes under its identifier (agent-core.ts refuses a
   * Put that would), so a key held again keeps its place in the slab.
   */
  private hold(uid: string, metadata: KeyMetadata, material: Uint8Array): HeldKey {
    const before = this.memory.get(uid);
    if (before && before.size === material.length && timingSafeEqual(before.material, material)) {
      const held = new HeldKey(compactMetadata(metadata), before.bytes, before.at, before.size);
      this.memory.set(uid, held);
      return held;
    }
    if (before) this.forget(uid);
    const held = new HeldKey(compactMetadata(metadata), EMPTY, 0, material.length);
    this.slab.write(held, material, this.memory.values());
    this.memory.set(uid, held);
    return held;
  }

  private forget(uid: string): void {
    const held = this.memory.get(uid);
    if (!held) return;
    this.memory.delete(uid);
    this.slab.release(held, this.memory.values());
  }

  private record(uid: string, objectType: number, object: TtlvItem, attributes: readonly Attribute[]): CachedKey {
    const material = keyMaterialOf(keyBlockOf(object));
    const metadata: KeyMetadata = {
      uniqueIdentifier: uid, objectType, state: 0, algorithm: undefined, length: undefined, usageMask: undefined, usageLimitsUnit: undefined,
      names: [], objectGroups: [], lastChangeDate: undefined, refreshedAt: this.now(),
    };
    applyAttributes(metadata, attributes, this.now());
    if (object.tag === Tag.SecretData && object.type === ItemType.Structure) {
      const secretDataType = object.value.find((c) => c.tag === Tag.SecretDataType)?.value;
      if (typeof secretDataType === 'number') metadata.secretDataType = secretDataType;
    }
    return { metadata, material };
  }

  private recordOperations(key: CachedKey): BatchOperation[] {
    const uid = key.metadata.uniqueIdentifier;
    return [
      { type: 'put', key: MATERIAL + uid, value: this.masterKey.seal(key.material, MATERIAL + uid) },
      { type: 'put', key: META + uid, value: toJson(key.metadata) },
    ];
  }

  private async load(uid: string): Promise<HeldKey | undefined> {
    const [meta, sealed] = await Promise.all([this.store.get(META + uid), this.store.get(MATERIAL + uid)]);
    if (!meta || !sealed) return undefined;
    const material = this.masterKey.open(sealed, MATERIAL + uid);
    const held = this.hold(uid, fromJson(meta), material);
    material.fill(0); // the plaintext now lives in the slab only
    return held;
  }
}

/** Metadata of every key cached in `store`; needs no master key, carries no key material. */
export async function listCachedKeys(store: KeyValueStore): Promise<KeyMetadata[]> {
  const out: KeyMetadata[] = [];
  for await (const [, value] of store.entries(META)) out.push(fromJson(value));
  return out;
}

/** A one-line description of a cached key for operators: never the material. */
export function describeKey(meta: KeyMetadata): string {
  return `${meta.uniqueIdentifier} ${meta.names.join(',') || '-'} ${enumerationText(Tag.State, meta.state)} lease ${meta.leaseExpiresAt === undefined ? 'unlimited' : isoTime(Number(meta.leaseExpiresAt) * 1000)}`;
}

/** The time now in whole seconds (KMIP Date-Time), as a bigint: made anew once a second, not at each of the second's cached Gets. */
function unixSeconds(): bigint {
  const seconds = Math.floor(Date.now() / 1000);
  if (seconds !== lastSeconds) {
    lastSeconds = seconds;
    lastSecondsBig = BigInt(seconds);
  }
  return lastSecondsBig;
}
let lastSeconds = -1;
let lastSecondsBig = -1n;
