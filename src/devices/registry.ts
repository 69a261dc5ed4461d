/**
 * The device registry (ARCHITECTURE.md §5): each device's id, suite, 256-bit key (sealed under
 * the agent's master key, never stored in clear) and its allow-lists of keys — by Unique
 * Identifier, Name or Object Group — and of KMIP operations.
 */
import { randomBytes } from 'node:crypto';
import { KmipEdgeError } from '../errors.ts';
import type { BatchOperation, KeyValueStore } from '../store/kv-store.ts';
import type { MasterKey } from '../store/master-key.ts';
import { DOWN_COUNTER_PREFIX } from './down-counters.ts';
import { Suite } from './frame.ts';
import { counterKey, KEPT_REPLY_PREFIX } from './replay-guard.ts';

const PREFIX = 'device/registry/';

const DEVICE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Operations a device may be allowed (PROTOCOL.md §5), by KMIP XML name. */
export const DEVICE_OPERATIONS = ['Get', 'GetAttributes', 'GetUsageAllocation', 'ObtainLease', 'Check', 'Query', 'DiscoverVersions', 'AddAttribute', 'ModifyAttribute'] as const;
export type DeviceOperation = (typeof DEVICE_OPERATIONS)[number];

export interface KeyRule {
  uniqueIdentifier?: string;
  name?: string;
  objectGroup?: string;
}

export interface DeviceLimits {
  /** Requests per second a device may make (token bucket, bursts up to twice that). */
  requestsPerSecond: number;
  /** Largest frame accepted from this device (≤ PROTOCOL.md's 4096). */
  maxFrameBytes: number;
}

export const DEFAULT_DEVICE_LIMITS: Readonly<DeviceLimits> = Object.freeze({ requestsPerSecond: 50, maxFrameBytes: 4096 });

export interface Device {
  id: string;
  suite: Suite;
  key: Uint8Array;
  keys: KeyRule[];
  operations: DeviceOperation[];
  limits: DeviceLimits;
}

interface StoredDevice {
  id: string;
  suite: Suite;
  sealedKey: string;
  keys: KeyRule[];
  operations: DeviceOperation[];
  limits?: DeviceLimits;
}

/** Every operation, in DEVICE_OPERATIONS' order: what `add` allows by default. */
const ALL_OPERATIONS: readonly DeviceOperation[] = Object.freeze([...DEVICE_OPERATIONS]);

/** `operations` as DEVICE_OPERATIONS' own strings; the one shared (frozen) list when it is all of them in order. */
function sharedOperations(operations: DeviceOperation[]): DeviceOperation[] {
  if (operations.length === ALL_OPERATIONS.length && operations.every((name, i) => name === ALL_OPERATIONS[i])) return ALL_OPERATIONS as DeviceOperation[];
  return operations.map((name) => DEVICE_OPERATIONS.find((known) => known === name) ?? name);
}

function sharedLimits(limits: DeviceLimits | undefined): DeviceLimits {
  if (limits === undefined || (limits.requestsPerSecond === DEFAULT_DEVICE_LIMITS.requestsPerSecond && limits.maxFrameBytes === DEFAULT_DEVICE_LIMITS.maxFrameBytes)) return DEFAULT_DEVICE_LIMITS;
  return limits;
}

function checkLimits(limits: DeviceLimits): void {
  if (!(limits.requestsPerSecond > 0) || !(limits.maxFrameBytes >= 64 && limits.maxFrameBytes <= 4096)) {
    throw new KmipEdgeError('DEVICE_INVALID', 'limits: requests per second > 0, frames of 64 to 4096 bytes');
  }
}

export class DeviceRegistry {
  constructor(
    /** Where devices are kept (their counters too: the counter recovery, PROTOCOL.md §3.2). */
    readonly store: KeyValueStore,
    private readonly masterKey: MasterKey,
  ) {}

  /** Registers a device with a fresh key; refuses an id already in use. */
  async add(id: string, options: { suite?: Suite; keys?: KeyRule[]; operations?: DeviceOperation[]; limits?: Partial<DeviceLimits> } = {}): Promise<Device> {
    if (!DEVICE_ID.test(id)) throw new KmipEdgeError('DEVICE_INVALID', `device id ${JSON.stringify(id)} is not 1-64 of [A-Za-z0-9._-]`);
    if (await this.store.get(PREFIX + id)) throw new KmipEdgeError('DEVICE_EXISTS', `device ${id} is already registered`);
    const device: Device = {
      id,
      suite: options.suite ?? Suite.AES_256_GCM,
      key: new Uint8Array(randomBytes(32)),
      keys: options.keys ?? [],
      // Add/Modify Attribute serve only the nonce-MAC batch (x-Nonce then Get; PROTOCOL.md §5).
      operations: options.operations ?? ['Get', 'GetAttributes', 'GetUsageAllocation', 'ObtainLease', 'Check', 'Query', 'DiscoverVersions', 'AddAttribute', 'ModifyAttribute'],
      limits: { ...DEFAULT_DEVICE_LIMITS, ...options.limits },
    };
    checkLimits(device.limits);
    const stored: StoredDevice = { id, suite: device.suite, sealedKey: Buffer.from(this.masterKey.seal(device.key, PREFIX + id)).toString('base64'), keys: device.keys, operations: device.operations, limits: device.limits };
    await this.store.commit([{ type: 'put', key: PREFIX + id, value: new Uint8Array(Buffer.from(JSON.stringify(stored))) }]);
    return device;
  }

  /**
   * Replaces a device's allow-lists and limits — the lists given replace the stored ones, what is
   * not given stays — keeping its key and counters (issue #12 §5: a Put Replace gives a key a new
   * Unique Identifier; the device is re-allowed without being re-keyed). False if there is no such device.
   */
  async update(id: string, change: { keys?: KeyRule[]; operations?: DeviceOperation[]; limits?: Partial<DeviceLimits> }): Promise<Omit<Device, 'key'> | undefined> {
    const raw = await this.store.get(PREFIX + id);
    if (!raw) return undefined;
    const stored = JSON.parse(Buffer.from(raw).toString()) as StoredDevice;
    const limits = { ...(stored.limits ?? DEFAULT_DEVICE_LIMITS), ...change.limits };
    checkLimits(limits);
    const next: StoredDevice = { ...stored, keys: change.keys ?? stored.keys, operations: change.operations ?? stored.operations, limits };
    await this.store.commit([{ type: 'put', key: PREFIX + id, value: new Uint8Array(Buffer.from(JSON.stringify(next))) }]);
    const { sealedKey: _sealed, ...device } = next;
    return { ...device, limits };
  }

  /**
   * The device as the device service holds it in memory for every device that sends (issue #15
   * footprint: 1,000 devices): its operations are the shared names of DEVICE_OPERATIONS (one list
   * for all when it is the default), its limits the shared defaults when they are those.
   */
  async get(id: string): Promise<Device | undefined> {
    const raw = await this.store.get(PREFIX + id);
    if (!raw) return undefined;
    const stored = JSON.parse(Buffer.from(raw).toString()) as StoredDevice;
    return { id: stored.id, suite: stored.suite, key: this.masterKey.open(new Uint8Array(Buffer.from(stored.sealedKey, 'base64')), PREFIX + id), keys: stored.keys, operations: sharedOperations(stored.operations), limits: sharedLimits(stored.limits) };
  }

  /** Every device, without its key. */
  async list(): Promise<Omit<Device, 'key'>[]> {
    const out: Omit<Device, 'key'>[] = [];
    for await (const [, raw] of this.store.entries(PREFIX)) {
      const { sealedKey: _sealed, limits, ...device } = JSON.parse(Buffer.from(raw).toString()) as StoredDevice;
      out.push({ ...device, limits: limits ?? DEFAULT_DEVICE_LIMITS });
    }
    return out;
  }

  /**
   * Removes the device and everything the agent kept of it: its counter windows, its down
   * counter and the replies kept for its resends. Added again it gets a new key, so its
   * counters start afresh without reusing a nonce (a kept state would refuse them as replays).
   */
  async remove(id: string): Promise<boolean> {
    if (!(await this.store.get(PREFIX + id))) return false;
    const writes: BatchOperation[] = [PREFIX + id, counterKey(id, 'up'), counterKey(id, 'down'), DOWN_COUNTER_PREFIX + id].map((key) => ({ type: 'del', key }));
    for await (const [key] of this.store.entries(`${KEPT_REPLY_PREFIX}${id}/`)) writes.push({ type: 'del', key });
    await this.store.commit(writes);
    return true;
  }
}

/** Whether a key (its identifier, names and groups) is on a device's allow-list. */
export function keyAllowed(device: { readonly keys: readonly KeyRule[] }, key: { uniqueIdentifier: string; names: readonly string[]; objectGroups: readonly string[] }): boolean {
  return device.keys.some((rule) =>
    (rule.uniqueIdentifier !== undefined && rule.uniqueIdentifier === key.uniqueIdentifier) ||
    (rule.name !== undefined && key.names.includes(rule.name)) ||
    (rule.objectGroup !== undefined && key.objectGroups.includes(rule.objectGroup)));
}
