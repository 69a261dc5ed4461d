/**
 * The keys a local KMIP client created or registered through the edge KMIP service (issue #16):
 * visible to it afterwards whatever its allow-list says — a tape library that creates a key for a
 * cartridge must be able to get it back. Recorded durably (`edge/created/<client>/<uid>`) before
 * the Create is answered; read once per client into memory.
 */
import type { BatchOperation, KeyValueStore } from '../store/kv-store.ts';

/** Store prefix of the records, by client (`client remove` deletes `${CREATED_PREFIX}<client>/`). */
export const CREATED_PREFIX = 'edge/created/';

const EMPTY = new Uint8Array(0);

function clientPrefix(clientId: string): string {
  return `${CREATED_PREFIX}${encodeURIComponent(clientId)}/`;
}

export class CreatedKeys {
  private readonly byClient = new Map<string, Set<string>>();
  private readonly loading = new Map<string, Promise<Set<string>>>();

  constructor(private readonly store: KeyValueStore) {}

  /** The client's keys if already read into memory (the synchronous hot path); undefined otherwise. */
  known(clientId: string): ReadonlySet<string> | undefined {
    return this.byClient.get(clientId);
  }

  /** The client's keys, read from the store the first time. */
  async of(clientId: string): Promise<ReadonlySet<string>> {
    const known = this.byClient.get(clientId);
    if (known) return known;
    let loading = this.loading.get(clientId);
    if (!loading) {
      loading = (async () => {
        const uids = new Set<string>();
        const prefix = clientPrefix(clientId);
        for await (const [key] of this.store.entries(prefix)) uids.add(decodeURIComponent(key.slice(prefix.length)));
        this.byClient.set(clientId, uids);
        return uids;
      })().finally(() => this.loading.delete(clientId));
      this.loading.set(clientId, loading);
    }
    return loading;
  }

  /** The write that records `uid` as the client's (commit it, then call `remember`). */
  record(clientId: string, uid: string): BatchOperation {
    return { type: 'put', key: clientPrefix(clientId) + encodeURIComponent(uid), value: EMPTY };
  }

  /** Records `uid` as the client's, synced, before the Create or Register is answered. */
  async add(clientId: string, uid: string): Promise<void> {
    await this.store.commit([this.record(clientId, uid)]);
    await this.remember(clientId, uid);
  }

  /** Records `uid` as the client's unless the record is on disk already (written with the key pool's batch). */
  async ensure(clientId: string, uid: string): Promise<void> {
    const write = this.record(clientId, uid);
    if (!(await this.store.get(write.key))) await this.store.commit([write]);
    await this.remember(clientId, uid);
  }

  /** After the record is on disk (a commit of record()): visible at once. */
  async remember(clientId: string, uid: string): Promise<void> {
    (await this.of(clientId) as Set<string>).add(uid);
  }

  /** The client was removed or changed in its registry: read its records again next time. */
  forget(clientId: string): void {
    this.byClient.delete(clientId);
  }
}
