/**
 * The agent's counters towards each device (firmware-bridge/PROTOCOL.md §3): strictly increasing,
 * never reused with the same key — the counter is half of the AEAD nonce. They are reserved in
 * durable blocks: a new block is written, synced, before its first counter is handed out, so a
 * restart continues after the block and most frames need no write for their counter at all.
 * Replies and relayed pushes draw from the same sequence, concurrently.
 */
import type { KeyValueStore } from '../store/kv-store.ts';

export const DOWN_COUNTER_PREFIX = 'device/down/';
/** Counters reserved per durable write. */
const BLOCK = 1024n;

interface Block {
  next: bigint;
  /** Highest counter on disk as reserved. */
  limit: bigint;
  /** The reservation being written, and up to which counter it reserves. */
  reserving: Promise<void> | undefined;
  reservingUpTo: bigint;
}

export class DownCounters {
  private readonly blocks = new Map<string, Promise<Block>>();
  /** The blocks loaded, for the hot path: a counter already reserved on disk is handed out at once. */
  private readonly loaded = new Map<string, Block>();

  constructor(private readonly store: KeyValueStore) {}

  /** The next counter for `deviceId`: at once when reserved on disk already, else once it is. */
  next(deviceId: string): bigint | Promise<bigint> {
    const block = this.loaded.get(deviceId);
    if (block !== undefined && block.next <= block.limit) return block.next++;
    return this.reserve(deviceId);
  }

  /** Forgets the device's block (its stored reservation was changed by the counter recovery, PROTOCOL.md §3.2). */
  forget(deviceId: string): void {
    this.loaded.delete(deviceId);
    this.blocks.delete(deviceId);
  }

  private async reserve(deviceId: string): Promise<bigint> {
    let pending = this.blocks.get(deviceId);
    if (!pending) {
      pending = this.load(deviceId);
      this.blocks.set(deviceId, pending);
    }
    const block = await pending;
    const counter = block.next++;
    if (counter <= block.limit) return counter;
    if (block.reserving === undefined || counter > block.reservingUpTo) {
      const upTo = counter + BLOCK - 1n;
      const value = new Uint8Array(8);
      new DataView(value.buffer).setBigUint64(0, upTo);
      block.reservingUpTo = upTo;
      block.reserving = this.store.commit([{ type: 'put', key: DOWN_COUNTER_PREFIX + deviceId, value }]).then(() => {
        if (upTo > block.limit) block.limit = upTo;
      }, (error: unknown) => {
        // Not reserved (disk full): the next counter asks again, instead of this failure for ever.
        block.reserving = undefined;
        block.reservingUpTo = block.limit;
        throw error;
      });
    }
    await block.reserving;
    return counter;
  }

  private async load(deviceId: string): Promise<Block> {
    const stored = await this.store.get(DOWN_COUNTER_PREFIX + deviceId);
    const reservedUpTo = stored ? new DataView(stored.buffer, stored.byteOffset, 8).getBigUint64(0) : 0n;
    const block = { next: reservedUpTo + 1n, limit: reservedUpTo, reserving: undefined, reservingUpTo: reservedUpTo };
    this.loaded.set(deviceId, block);
    return block;
  }
}
