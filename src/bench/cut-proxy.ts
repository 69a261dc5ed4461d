/**
 * A TCP relay between the agent and its upstream that `bench outage` cuts and restores, as a
 * network does: "refuse" — the listener is closed and every relayed connection reset, so the
 * agent's connects fail at once (ECONNREFUSED), like a server whose process is gone; "blackhole" —
 * connections are still accepted but no byte moves in either direction (both sides paused, so
 * what is sent waits in the kernel as it would in TCP retransmissions), like a partition or a hung
 * server. On restore the relay accepts and relays again; a blackholed connection the agent kept
 * open resumes where it stopped, as one does when a partition heals.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type CutMode = 'refuse' | 'blackhole';

interface Pair {
  agent: Socket;
  upstream: Socket | undefined;
  /** Bytes from the agent not yet sent upstream (before the upstream side is connected). */
  held: Buffer[];
}

export class CutProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<Pair>();
  private cut: CutMode | undefined;
  /** Connections accepted and relayed since start (for the report: how hard the agent retried). */
  connectionsAccepted = 0;
  /** When the first connection after the last restore was relayed to the upstream (ms, performance.now()). */
  firstRelayedAfterRestore: number | undefined;
  /** When the last restore began (ms, performance.now()). */
  restoredAt: number | undefined;

  private constructor(
    readonly port: number,
    private readonly upstream: { host: string; port: number },
  ) {}

  static async start(upstream: { host: string; port: number }, port = 0): Promise<CutProxy> {
    const proxy = new CutProxy(port, upstream);
    const bound = await proxy.listen(port);
    (proxy as { port: number }).port = bound;
    return proxy;
  }

  private listen(port: number): Promise<number> {
    const server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as { port: number }).port);
      });
    });
  }

  private accept(agent: Socket): void {
    this.connectionsAccepted++;
    const pair: Pair = { agent, upstream: undefined, held: [] };
    this.pairs.add(pair);
    agent.on('error', () => undefined);
    agent.on('close', () => {
      pair.upstream?.destroy();
      this.pairs.delete(pair);
    });
    agent.on('data', (chunk: Buffer) => (pair.upstream ? pair.upstream.write(chunk) : pair.held.push(chunk)));
    if (this.cut === 'blackhole') agent.pause();
    else this.relay(pair);
  }

  /** Connects the pair's upstream side and pipes both ways. */
  private relay(pair: Pair): void {
    if (pair.upstream || pair.agent.destroyed) return;
    if (this.restoredAt !== undefined && this.firstRelayedAfterRestore === undefined) this.firstRelayedAfterRestore = performance.now();
    const upstream = connect({ ...this.upstream, noDelay: true });
    pair.upstream = upstream;
    upstream.on('error', () => pair.agent.destroy());
    upstream.on('close', () => pair.agent.destroy());
    upstream.on('data', (chunk: Buffer) => pair.agent.write(chunk));
    for (const chunk of pair.held.splice(0)) upstream.write(chunk);
    pair.agent.resume();
  }

  /** Cuts the upstream off, the way `mode` says. */
  async cutOff(mode: CutMode): Promise<void> {
    this.cut = mode;
    this.restoredAt = undefined;
    this.firstRelayedAfterRestore = undefined;
    if (mode === 'refuse') {
      const server = this.server!;
      this.server = undefined;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const pair of this.pairs) {
          pair.agent.resetAndDestroy();
          pair.upstream?.destroy();
        }
      });
    } else {
      for (const pair of this.pairs) {
        pair.agent.pause();
        pair.upstream?.pause();
      }
    }
  }

  /** Lets traffic through again. */
  async restore(): Promise<void> {
    const mode = this.cut;
    this.cut = undefined;
    this.restoredAt = performance.now();
    if (mode === 'refuse') {
      await this.listen(this.port);
    } else if (mode === 'blackhole') {
      for (const pair of this.pairs) {
        if (pair.upstream) {
          pair.upstream.resume();
          pair.agent.resume();
        } else {
          this.relay(pair);
        }
      }
    }
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) {
      pair.agent.destroy();
      pair.upstream?.destroy();
    }
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
