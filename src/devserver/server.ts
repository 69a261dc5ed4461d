/**
 * The development KMIP server's listener: TTLV over mutual TLS (KMIP 1.2 §10). Clients must
 * present a certificate from the server's CA; requests on one connection are answered in order.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { TtlvFramer } from '../ttlv/framer.ts';
import type { DevPki } from './pki.ts';
import { RequestProcessor, type DevServerOptions } from './request-processor.ts';

export class DevKmipServer {
  readonly processor: RequestProcessor;
  private server: Server | undefined;
  private readonly sockets = new Set<TLSSocket>();

  constructor(
    private readonly pki: DevPki,
    options: DevServerOptions = {},
  ) {
    this.processor = new RequestProcessor(options);
  }

  async listen(port: number, host = '127.0.0.1'): Promise<number> {
    this.server = createServer(
      {
        ca: readFileSync(this.pki.ca),
        cert: readFileSync(this.pki.serverCert),
        key: readFileSync(this.pki.serverKey),
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
      },
      (socket) => this.serve(socket),
    );
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  private serve(socket: TLSSocket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const framer = new TtlvFramer();
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const message of framer.push(chunk)) socket.write(this.processor.process(message));
      } catch {
        socket.destroy(); // framing lost (KMIP 2.x §10.1 says close); nothing sensible to answer
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.sockets.delete(socket));
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
    });
  }
}
