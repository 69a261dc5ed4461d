/**
 * Relayed pushes still waiting for each device's acknowledgement: the entries of its durable
 * outbox (push-relay.ts, `outbox/<device>/<sequence>`). Read from the store, so the count is what
 * survives a restart, not what one process remembers.
 */
import { OUTBOX } from '../devices/push-relay.ts';
import type { KeyValueStore } from '../store/kv-store.ts';

export async function pendingPushes(store: KeyValueStore): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for await (const [key] of store.entries(OUTBOX)) {
    const device = key.slice(OUTBOX.length, key.lastIndexOf('/'));
    counts.set(device, (counts.get(device) ?? 0) + 1);
  }
  return counts;
}
