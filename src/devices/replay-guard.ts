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
/** The store key of a device's counter state (device-admin and the recovery command write it too). */
/** Store prefix of the replies kept for a device's resends (device-service.ts), by device. */
export const KEPT_REPLY_PREFIX = 'device/reply/';

export function counterKey(deviceId: string, direction: Direction): string {
  return storeKey(deviceId, direction);
}
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
   * Store keys whose counter state is to be written later (reads): at flush the state as it is
   * then is written — never an older snapshot, so a deferred write cannot undo a synced one.
   */
  private readonly pending = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly store: KeyValueStore) {}

  /**
   * Writes the counter of a read later, with others, unsynced (PROTOCOL.md §3: a read served again
   * after a power cut changes nothing). In memory the counter is already accepted.
   */
  defer(write: CounterWrite): void {
    this.pending.add(write.key);
    if (this.pending.size >= DEFER_MAX) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), DEFER_MS);
  }

  /**
   * The write of the window behind `write` as it is now, for a synced batch (a request with an
   * effect): it holds every counter accepted so far, so the deferred write of the same key is
   * dropped, and earlier deferred writes have landed first, so that none lands after it.
   */
  async supersede(write: BatchOperation): Promise<CounterWrite> {
    this.pending.delete(write.key);
    await this.flushing;
    return this.current(write.key);
  }

  /** The window state of `key` now, as a store write. */
  private current(key: string): CounterWrite {
    const window = this.windows.get(key);
    const value = new Uint8Array(16);
    const view = new DataView(value.buffer);
    view.setBigUint64(0, window?.highest ?? 0n);
    view.setBigUint64(8, window?.seen ?? 0n);
    return { type: 'put', key, value };
  }

  /** Writes what is deferred (also on close). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const keys = [...this.pending].filter((key) => this.windows.has(key));
    this.pending.clear();
    if (keys.length === 0) return this.flushing;
    // Written as they are when the write goes out. A failed write (disk full, issue #13 finding 2)
    // is not a failure of any frame: the keys wait for the next flush, and the timer flushes
    // again (the chain never stays rejected, and no rejection goes unhandled).
    this.flushing = this.flushing.then(() => this.store.write(keys.map((key) => this.current(key)))).catch(() => {
      for (const key of keys) this.pending.add(key);
      this.timer ??= setTimeout(() => void this.flush(), DEFER_MS);
    });
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

  /**
   * Where `counter` stands (after accept refused it, the window is in memory): 'seen' — accepted
   * before and still inside the window, so a resend the agent can answer (PROTOCOL.md §3) —
   * or 'old', below the window: nothing about it is known any more.
   */
  standing(deviceId: string, direction: Direction, counter: bigint): 'seen' | 'old' {
    const window = this.windows.get(storeKey(deviceId, direction));
    if (!window || counter > window.highest) return 'old';
    const offset = window.highest - counter;
    return offset < REPLAY_WINDOW && (window.seen & (1n << offset)) !== 0n ? 'seen' : 'old';
  }

  /** The highest counter accepted from the device in `direction` (0 when none, or not loaded). */
  highest(deviceId: string, direction: Direction): bigint {
    return this.windows.get(storeKey(deviceId, direction))?.highest ?? 0n;
  }

  /** Forgets the in-memory window (the device was changed in the store by someone else). */
  forget(deviceId: string): void {
    for (const direction of ['up', 'down'] as const) {
      this.windows.delete(storeKey(deviceId, direction));
      this.pending.delete(storeKey(deviceId, direction));
    }
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
    return this.current(key);
  }
}
