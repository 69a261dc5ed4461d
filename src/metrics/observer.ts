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
/** Result Reason values kept as themselves (General Failure is 0x100); others count as "Other". */
const REASONS = 512;
const OTHER_REASON = REASONS - 1;

/** Operation value → row (1 + its index in DEVICE_OPERATIONS); row 0 is "Other". */
const OPERATION_ROW = new Uint8Array(256);
DEVICE_OPERATIONS.forEach((name, index) => (OPERATION_ROW[Operation[name]] = index + 1));
const ROW_OPERATION = [0, ...DEVICE_OPERATIONS.map((name) => Operation[name])];

export class AgentObserver {
  /** Device requests, by operation row × REASONS + result (SUCCESS or a Result Reason). */
  private readonly requests = new Float64Array(ROW_OPERATION.length * REASONS);
  private cacheHits = 0;
  private cacheMisses = 0;
  /**
   * Each device's last authenticated frame, in whole seconds since `epoch` — a small integer, so
   * that updating it allocates nothing (a Map value beyond 2^30 is a boxed number).
   */
  private readonly seen = new Map<string, number>();
  private readonly epoch = Date.now();
  /** Seconds since `epoch`, refreshed every second: Date.now() costs ~0.1 µs on this kind of VM. */
  private clock = 0;
  private ticking: NodeJS.Timeout | undefined;

  /** One batch item answered for a device: `result` is SUCCESS or the Result Reason it got. */
  deviceRequest(operation: number, result: number): void {
    const row = operation >= 0 && operation < 256 ? OPERATION_ROW[operation]! : 0;
    this.requests[row * REASONS + (result >= 0 && result < OTHER_REASON ? result : OTHER_REASON)]!++;
  }

  /** A key cache lookup: found in memory or on disk (hit), or fetched from the upstream (miss). */
  cacheLookup(hit: boolean): void {
    if (hit) this.cacheHits++;
    else this.cacheMisses++;
  }

  /** A frame from `deviceId` opened with its key (an authenticated device, never a claimed id). */
  deviceSeen(deviceId: string): void {
    if (this.ticking === undefined) {
      this.tick();
      this.ticking = setInterval(() => this.tick(), 1000).unref();
    }
    this.seen.set(deviceId, this.clock);
  }

  /** When `deviceId` was last heard from (milliseconds since the Unix epoch, to the second), if since this process started. */
  lastSeenAt(deviceId: string): number | undefined {
    const seconds = this.seen.get(deviceId);
    return seconds === undefined ? undefined : this.epoch + seconds * 1000;
  }

  /** The device was removed from the registry: forget when it was seen. */
  deviceRemoved(deviceId: string): void {
    this.seen.delete(deviceId);
  }

  private tick(): void {
    this.clock = Math.floor((Date.now() - this.epoch) / 1000);
  }

  /** Device request counts with their label values (spec names). */
  deviceRequests(): { operation: string; result: string; count: number }[] {
    const out: { operation: string; result: string; count: number }[] = [];
    this.requests.forEach((count, index) => {
      if (count > 0) out.push({ operation: operationLabel(ROW_OPERATION[Math.floor(index / REASONS)]!), result: resultLabel(index % REASONS), count });
    });
    return out;
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
