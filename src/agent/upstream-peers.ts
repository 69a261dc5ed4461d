/**
 * Who the registered upstream is, learned (issue #12 §6, ARCHITECTURE.md §4 invariant 6): the
 * SPKI digests of the certificates the upstream presented on the agent's own verified
 * connections (CA chain and server name checked by the handshake). The Put/Notify listener's
 * default check is that its peer presents one of these — the strongest check that needs no
 * configuration: another certificate of the same CA, the agent's own client certificate included,
 * is not the upstream. Kept in the store, so that an agent restarted while the upstream is
 * unreachable still knows it; the newest few are kept, for a key server that rotates its key or
 * a cluster whose nodes have keys of their own.
 */
import type { Logger } from '../log.ts';
import type { KeyValueStore } from '../store/kv-store.ts';

const PREFIX = 'upstream/spki/';
/** SPKIs kept: the newest ones seen. */
export const MAX_UPSTREAM_SPKIS = 4;

export class UpstreamPeers {
  /** Digest → when it was last seen first (ms); insertion order is age order. */
  private readonly known = new Map<string, number>();

  private constructor(
    private readonly store: KeyValueStore,
    private readonly log: Logger,
  ) {}

  static async load(store: KeyValueStore, log: Logger): Promise<UpstreamPeers> {
    const peers = new UpstreamPeers(store, log);
    const stored: [string, number][] = [];
    for await (const [key, value] of store.entries(PREFIX)) stored.push([key.slice(PREFIX.length), Number(Buffer.from(value).toString())]);
    for (const [spki, at] of stored.sort((a, b) => a[1] - b[1])) peers.known.set(spki, at);
    return peers;
  }

  get size(): number {
    return this.known.size;
  }

  has(spkiSha256: string): boolean {
    return this.known.has(spkiSha256);
  }

  /** The upstream presented this key on a verified connection: remember it (durably, best effort). */
  record(spkiSha256: string): void {
    if (this.known.has(spkiSha256)) return;
    const at = Date.now();
    this.known.set(spkiSha256, at);
    const forgotten = [...this.known.keys()].slice(0, Math.max(0, this.known.size - MAX_UPSTREAM_SPKIS));
    for (const old of forgotten) this.known.delete(old);
    this.log.info({ event: 'upstream-certificate-learned', spkiSha256, forgotten }, 'upstream certificate learned: pushes are accepted from it');
    void this.store.commit([
      { type: 'put', key: PREFIX + spkiSha256, value: new Uint8Array(Buffer.from(String(at))) },
      ...forgotten.map((old) => ({ type: 'del' as const, key: PREFIX + old })),
    ]).catch((error: unknown) => {
      // Known in memory all the same; learned again on the next connection after a restart.
      this.log.warn({ event: 'upstream-certificate-not-stored', reason: (error as Error).message }, 'upstream certificate not stored');
    });
  }
}
