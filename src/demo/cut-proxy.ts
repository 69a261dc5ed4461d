/**
 * The demo's "network cable" between the agent and the key server: a TCP relay the demo can cut
 * and restore. Cut, it drops every open connection and refuses new ones at once, as a broken link
 * or a rebooting firewall would; TLS runs end to end through it untouched (it sees only bytes).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export class CutProxy {
  private cut = false;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server) {}

  static async start(target: { host: string; port: number }): Promise<CutProxy> {
    const server = createServer();
    const proxy = new CutProxy(server);
    server.on('connection', (inbound) => proxy.relay(inbound, target));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get isCut(): boolean {
    return this.cut;
  }

  private relay(inbound: Socket, target: { host: string; port: number }): void {
    if (this.cut) return void inbound.destroy();
    const outbound = connect(target.port, target.host);
    for (const socket of [inbound, outbound]) {
      this.sockets.add(socket);
      socket.on('error', () => undefined); // the other side's close ends both
      socket.on('close', () => {
        this.sockets.delete(socket);
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  }

  /** Drops every connection; new ones are refused until restore(). */
  sever(): void {
    this.cut = true;
    for (const socket of this.sockets) socket.destroy();
  }

  restore(): void {
    this.cut = false;
  }

  close(): Promise<void> {
    this.sever();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
