/**
 * What the agent's hot paths count, for /metrics and `kmip-edge status`: plain numbers updated in
 * place (a Map lookup and an add per event — no label hashing, no allocation on a cache hit), read
 * only when scraped or asked. One per process (`observer`), like prom-client's default registry.
 *
 * Bounded by construction: the labels come from the device operations (DEVICE_OPERATIONS, anything
 * else is "Other") and the KMIP Result Reason enumeration; device ids only from devices that
 * authenticated (so from the registry), never from what a frame claims. Never key material.
 */
import { Operation, Tag } from '../kmip/tables.generated.ts';
import { enumerationFor, enumerationText } from '../kmip/vocabulary.ts';
import { DEVICE_OPERATIONS } from '../devices/registry.ts';

/** Result 0: Success (Result Reason values start at 1, KMIP 1.2 §9.1.3.2.29). */
export const SUCCESS = 0;
/** Result Reason values kept as themselves; others (extensions, 0x8XXXXXXX) count as "Other". */
const MAX_REASON = 0xfff;

const DEVICE_OPERATION_VALUES = new Set<number>(DEVICE_OPERATIONS.map((name) => Operation[name]));

export class AgentObserver {
  /** Device requests by operation × 4096 + result (SUCCESS or a Result Reason). */
  private readonly requests = new Map<number, number>();
  private cacheHits = 0;
  private cacheMisses = 0;
  /** Milliseconds since the epoch of each device's last authenticated frame. */
  readonly lastSeen = new Map<string, number>();

  /** One batch item answered for a device: `result` is SUCCESS or the Result Reason it got. */
  deviceRequest(operation: number, result: number): void {
    const op = DEVICE_OPERATION_VALUES.has(operation) ? operation : 0;
    const key = op * 4096 + (result >= 0 && result <= MAX_REASON ? result : MAX_REASON);
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  /** A key cache lookup: found in memory or on disk (hit), or fetched from the upstream (miss). */
  cacheLookup(hit: boolean): void {
    if (hit) this.cacheHits++;
    else this.cacheMisses++;
  }

  /** A frame from `deviceId` opened with its key (an authenticated device, never a claimed id). */
  deviceSeen(deviceId: string): void {
    this.lastSeen.set(deviceId, Date.now());
  }

  /** The device was removed from the registry: forget when it was seen. */
  deviceRemoved(deviceId: string): void {
    this.lastSeen.delete(deviceId);
  }

  /** Device request counts with their label values (spec names). */
  deviceRequests(): { operation: string; result: string; count: number }[] {
    return [...this.requests].map(([key, count]) => ({ operation: operationLabel(Math.floor(key / 4096)), result: resultLabel(key % 4096), count }));
  }

  cacheLookups(): { hits: number; misses: number } {
    return { hits: this.cacheHits, misses: this.cacheMisses };
  }
}

function operationLabel(operation: number): string {
  return operation === 0 ? 'Other' : enumerationText(Tag.Operation, operation);
}

function resultLabel(result: number): string {
  if (result === SUCCESS) return 'Success';
  return enumerationFor(Tag.ResultReason)?.byValue.get(result) ?? 'Other';
}

/** The process's observer: device-service.ts and key-cache.ts count here, src/metrics reads it. */
export const observer = new AgentObserver();
