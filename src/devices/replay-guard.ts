/**
 * Replay protection for device frames (firmware-bridge/PROTOCOL.md §3, ARCHITECTURE.md §4
 * invariant 4): per device and direction, the highest counter accepted and which of the 63 below
 * it were accepted (a sliding window, as DTLS and IPsec keep — RFC 6347 §4.1.2.6): a counter
 * passes once, if above the highest or inside the window and not yet seen, so that a device may
 * have several requests in flight and resend one that was lost after later ones arrived.
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

/**
 * Counter writes of reads are held this long, or until this many devices have one pending, then
 * written together — the latest per device only, so a busy device costs one write a second.
 */
const DEFER_MS = 1000;
const DEFER_MAX = 4096;

/** Counters below the highest that can still be accepted once. */
export const REPLAY_WINDOW = 64n;
const WINDOW_MASK = (1n << REPLAY_WINDOW) - 1n;

/** Bit i of `seen` stands for counter `highest - i` (bit 0: the highest itself). */
interface WindowState {
  highest: bigint;
  seen: bigint;
}

/** The store write of a counter state. */
export type CounterWrite = BatchOperation & { type: 'put' };

export class ReplayGuard {
  private readonly windows = new Map<string, WindowState>();
  /**
   * Counter states of reads not yet written, by store key: the latest only, copied into one array
   * per key and flush — not the write object of each request, which would then live a second.
   */
  private readonly pending = new Map<string, Uint8Array>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly store: KeyValueStore) {}

  /**
   * Writes the counter of a read later, with others, unsynced (PROTOCOL.md §3: a read served again
   * after a power cut changes nothing). In memory the counter is already accepted.
   */
  defer(write: CounterWrite): void {
    const state = this.pending.get(write.key);
    if (state) state.set(write.value);
    else this.pending.set(write.key, Uint8Array.from(write.value));
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
    const operations: BatchOperation[] = [];
    for (const [key, value] of this.pending) operations.push({ type: 'put', key, value });
    this.pending.clear();
    if (operations.length > 0) this.flushing = this.flushing.then(() => this.store.write(operations));
    return this.flushing;
  }

  /** The window from disk (the first frame of a device since start); a concurrent load's if it won. */
  private async load(key: string): Promise<WindowState> {
    const stored = await this.store.get(key);
    const view = stored && new DataView(stored.buffer, stored.byteOffset, stored.length);
    // 16 bytes: highest | window. 8 bytes (written before the window existed): the highest alone,
    // when every counter below it counted as used — so the whole window is marked seen.
    const loaded = view ? { highest: view.getBigUint64(0), seen: view.byteLength >= 16 ? view.getBigUint64(8) : WINDOW_MASK } : { highest: 0n, seen: 0n };
    return this.windows.get(key) ?? (this.windows.set(key, loaded), loaded);
  }

  /**
   * Accepts `counter` for (device, direction) or throws FRAME_REPLAYED (seen before, or older than
   * the window). Returns the write to commit with the frame's effect — at once when the window is
   * in memory (the hot path), once it is loaded otherwise.
   */
  accept(deviceId: string, direction: Direction, counter: bigint): CounterWrite | Promise<CounterWrite> {
    const key = storeKey(deviceId, direction);
    const known = this.windows.get(key);
    if (known !== undefined) return this.advance(deviceId, direction, key, known, counter);
    return this.load(key).then((window) => this.advance(deviceId, direction, key, window, counter));
  }

  private advance(deviceId: string, direction: Direction, key: string, window: WindowState, counter: bigint): CounterWrite {
    if (counter > window.highest) {
      const shift = counter - window.highest;
      window.seen = shift >= REPLAY_WINDOW ? 1n : ((window.seen << shift) | 1n) & WINDOW_MASK;
      window.highest = counter;
    } else {
      const offset = window.highest - counter;
      const bit = 1n << offset;
      if (offset >= REPLAY_WINDOW || (window.seen & bit) !== 0n) {
        throw frameError('FRAME_REPLAYED', `counter ${counter} of ${deviceId} (${direction}) was accepted before or is older than the window below ${window.highest}`);
      }
      window.seen |= bit;
    }
    const value = new Uint8Array(16);
    const view = new DataView(value.buffer);
    view.setBigUint64(0, window.highest);
    view.setBigUint64(8, window.seen);
    return { type: 'put', key, value };
  }
}
