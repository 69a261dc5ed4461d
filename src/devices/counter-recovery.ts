/**
 * Recovery of a device that lost its counters (PROTOCOL.md §3.2; issue #12 §5): its flash was
 * wiped, it was reflashed, or restored from an image. It must not go on from an old counter
 * with the same key — a counter used twice is an AEAD nonce used twice — and the agent rejects
 * every counter it accepted before (FRAME_REPLAYED), so the device was locked out until re-keyed.
 *
 * The operator raises the device's counter floor instead (`kmip-edge device reset-counter`):
 * - up: every counter up to `counter` counts as used — the highest the agent accepted plus
 *   RECOVERY_GAP (covering counters the device used in frames the agent never received, e.g.
 *   the rest of a reserved block), or a higher floor the operator gives;
 * - down: `pushCounter` is the highest counter the agent ever reserved towards the device; the
 *   agent's next frames to it are above it.
 * The device is provisioned with both (its last up counter and its last accepted push counter)
 * and goes on from there; replies kept for its old requests are deleted (they are below the floor
 * and can never be asked for again).
 */
import { KmipEdgeError } from '../errors.ts';
import type { BatchOperation, KeyValueStore } from '../store/kv-store.ts';
import { DOWN_COUNTER_PREFIX } from './down-counters.ts';
import { counterKey, KEPT_REPLY_PREFIX, REPLAY_WINDOW } from './replay-guard.ts';

/** Counters skipped above the highest the agent accepted (2^32: more than any block a device reserves). */
export const RECOVERY_GAP = 1n << 32n;
const MAX_COUNTER = (1n << 64n) - 1n;

export interface CounterFloor {
  id: string;
  /** The device's last up counter: its next frame carries counter + 1. */
  counter: bigint;
  /** The device's last accepted push counter: it accepts pushes above it. */
  pushCounter: bigint;
}

function readU64(value: Uint8Array | undefined): bigint {
  return value && value.length >= 8 ? new DataView(value.buffer, value.byteOffset, 8).getBigUint64(0) : 0n;
}

/** Raises the floor of device `id` in `store` (registered: `exists`); `floor` a lower bound the operator asks for. */
export async function resetDeviceCounter(store: KeyValueStore, id: string, exists: boolean, floor?: bigint): Promise<CounterFloor> {
  if (!exists) throw new KmipEdgeError('DEVICE_UNKNOWN', `no device ${id} is registered`);
  const highest = readU64(await store.get(counterKey(id, 'up')));
  let counter = highest + RECOVERY_GAP;
  if (floor !== undefined && floor > counter) counter = floor;
  if (counter >= MAX_COUNTER - REPLAY_WINDOW) throw new KmipEdgeError('DEVICE_COUNTER_EXHAUSTED', `device ${id}: no counters are left above ${counter}; give it a new key (remove and add it again)`);
  const window = new Uint8Array(16);
  const view = new DataView(window.buffer);
  view.setBigUint64(0, counter);
  view.setBigUint64(8, (1n << REPLAY_WINDOW) - 1n); // every counter up to the floor counts as used
  const pushCounter = readU64(await store.get(DOWN_COUNTER_PREFIX + id));
  const writes: BatchOperation[] = [{ type: 'put', key: counterKey(id, 'up'), value: window }];
  for await (const [key] of store.entries(`${KEPT_REPLY_PREFIX}${id}/`)) writes.push({ type: 'del', key });
  await store.commit(writes);
  return { id, counter, pushCounter };
}
