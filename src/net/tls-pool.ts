/**
 * A small pool of TTLV-over-TLS connections to one server (KmipTransport). Connections open on
 * demand up to `maxConnections`; a broken one is dropped and the next acquire opens a fresh one,
 * after an exponential back-off while connecting keeps failing.
 */
import type { ConnectionOptions } from 'node:tls';
import { DEFAULT_TTLV_LIMITS } from '../ttlv/limits.ts';
import { tlsConnectionOptions, type TlsEndpoint } from './tls-options.ts';
import type { KmipChannel, KmipTransport } from './transport.ts';
import { netError, TtlvConnection } from './ttlv-connection.ts';

export interface TlsPoolOptions {
  maxConnections?: number;
  maxResponseBytes?: number;
  /** Back-off after a failed connect: doubles from `minBackoffMs` up to `maxBackoffMs`. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * Called with the SPKI digest of the server's certificate on each new verified connection
   * (what the Put/Notify listener expects its upstream to present by default, issue #12 §6).
   */
  onVerifiedPeer?: (spkiSha256: string) => void;
}

export class TlsPool implements KmipTransport {
  private readonly options: ConnectionOptions;
  private readonly idle: TtlvConnection[] = [];
  private readonly waiters: ((connection: TtlvConnection | undefined) => void)[] = [];
  private open = 0;
  private failures = 0;
  private retryAt = 0;
  private closed = false;
  private readonly maxConnections: number;
  private readonly maxResponseBytes: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  /** See TlsPoolOptions; may be set after construction (the composition root wires it later). */
  onVerifiedPeer: ((spkiSha256: string) => void) | undefined;

  constructor(endpoint: TlsEndpoint, options: TlsPoolOptions = {}) {
    this.options = tlsConnectionOptions(endpoint);
    this.maxConnections = options.maxConnections ?? 4;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_TTLV_LIMITS.maxMessageBytes;
    this.minBackoffMs = options.minBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 5000;
    this.onVerifiedPeer = options.onVerifiedPeer;
  }

  /** Opens one fresh connection and closes it: learns the server's certificate now. */
  async probe(timeoutMs: number): Promise<void> {
    const connection = await TtlvConnection.open(this.options, timeoutMs, this.maxResponseBytes);
    this.verified(connection);
    connection.close();
  }

  private verified(connection: TtlvConnection): void {
    if (connection.peerSpkiSha256 !== undefined) this.onVerifiedPeer?.(connection.peerSpkiSha256);
  }

  async acquire(timeoutMs: number): Promise<KmipChannel> {
    if (this.closed) throw netError('NET_CLOSED', 'the connection pool is closed');
    for (let connection = this.idle.pop(); connection; connection = this.idle.pop()) {
      if (connection.isOpen) return connection;
      this.open--;
    }
    if (this.open < this.maxConnections) {
      this.open++;
      try {
        const wait = this.retryAt - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(wait, timeoutMs)));
        const connection = await TtlvConnection.open(this.options, timeoutMs, this.maxResponseBytes);
        this.failures = 0;
        this.verified(connection);
        return connection;
      } catch (error) {
        this.open--;
        this.failures++;
        this.retryAt = Date.now() + Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** (this.failures - 1));
        this.wakeOne(undefined); // let a waiter try to connect in our place
        throw error;
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(take);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(netError('NET_TIMEOUT', `no connection free within ${timeoutMs} ms`));
      }, timeoutMs);
      const take = (connection: TtlvConnection | undefined): void => {
        clearTimeout(timer);
        if (connection) resolve(connection);
        else this.acquire(timeoutMs).then(resolve, reject);
      };
      this.waiters.push(take);
    });
  }

  release(channel: KmipChannel, broken: boolean): void {
    const connection = channel as TtlvConnection;
    if (broken || !connection.isOpen || this.closed) {
      connection.close();
      this.open--;
      this.wakeOne(undefined);
      return;
    }
    if (!this.wakeOne(connection)) this.idle.push(connection);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const connection of this.idle.splice(0)) connection.close();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  /** Hands `connection` (or the right to open one) to the longest waiter; false if none waits. */
  private wakeOne(connection: TtlvConnection | undefined): boolean {
    const waiter = this.waiters.shift();
    if (!waiter) return false;
    waiter(connection);
    return true;
  }
}
