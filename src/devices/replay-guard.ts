/**
 * Replay protection for device frames (firmware-bridge/PROTOCOL.md §3, ARCHITECTURE.md §4
 * invariant 4): per device and direction, only a counter above the highest accepted one passes.
 * Accepting reserves the counter at once (a concurrent replay of it is refused) and returns the
 * store write that makes it durable — the caller commits it in the same synced batch as the
 * effect the frame authorizes, so a frame is acted on at most once, across crashes too.
 */
import type { BatchOperation, KeyValueStore } from '../store/kv-store.ts';
import { frameError, type Direction } from './frame.ts';

const PREFIX = 'device/counter/';

function storeKey(deviceId: string, direction: Direction): string {
  return `${PREFIX}${deviceId}/${direction}`;
}

/** Counter writes of reads are held this long, or until this many are pending, then written together. */
const DEFER_MS = 20;
const DEFER_MAX = 256;

export class ReplayGuard {
  private readonly highest = new Map<string, bigint>();
  /** Counter writes of reads not yet written, by store key (the latest only). */
  private readonly pending = new Map<string, BatchOperation>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly store: KeyValueStore) {}

  /**
   * Writes the counter of a read later, with others, unsynced (PROTOCOL.md §3: a read served again
   * after a power cut changes nothing). In memory the counter is already accepted.
   */
  defer(write: BatchOperation): void {
    this.pending.set(write.key, write);
    if (this.pending.size >= DEFER_MAX) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), DEFER_MS);
  }

  /**
   * Before a synced write carrying `write` (a request with an effect): the deferred write of the
   * same counter is dropped — the synced one is newer — and earlier deferred writes have landed,
   * so that no older value can overwrite it.
   */
  async supersede(write: BatchOperation): Promise<void> {
    this.pending.delete(write.key);
    await this.flushing;
  }

  /** Writes what is deferred (also on close). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const operations = [...this.pending.values()];
    this.pending.clear();
    if (operations.length > 0) this.flushing = this.flushing.then(() => this.store.write(operations));
    return this.flushing;
  }

  private async current(deviceId: string, direction: Direction): Promise<bigint> {
    const key = storeKey(deviceId, direction);
    const known = this.highest.get(key);
    if (known !== undefined) return known;
    const stored = await this.store.get(key);
    const value = stored ? new DataView(stored.buffer, stored.byteOffset, 8).getBigUint64(0) : 0n;
    return this.highest.get(key) ?? (this.highest.set(key, value), value);
  }

  /**
   * Accepts `counter` for (device, direction) or throws FRAME_REPLAYED. Returns the write to
   * commit with the frame's effect.
   */
  async accept(deviceId: string, direction: Direction, counter: bigint): Promise<BatchOperation> {
    const current = await this.current(deviceId, direction);
    const key = storeKey(deviceId, direction);
    if (counter <= (this.highest.get(key) ?? current)) throw frameError('FRAME_REPLAYED', `counter ${counter} of ${deviceId} (${direction}) is not above ${this.highest.get(key) ?? current}`);
    this.highest.set(key, counter);
    const value = new Uint8Array(8);
    new DataView(value.buffer).setBigUint64(0, counter);
    return { type: 'put', key, value };
  }
}
