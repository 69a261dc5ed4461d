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

export class ReplayGuard {
  private readonly highest = new Map<string, bigint>();

  constructor(private readonly store: KeyValueStore) {}

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
