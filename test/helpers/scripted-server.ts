/**
 * A scripted KMIP server in process, over real mutual TLS (TTLV framing) or HTTPS: each request
 * message is decoded and handed to the test's handler, whose answer is encoded and sent back.
 * For client behaviour no real server can be made to show on demand (Poll, Response Too Large,
 * batch continuation, dropped connections).
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { buildResponseMessage, parseRequestMessage, type RequestMessage, type ResponseBatchItemInput } from '../../src/kmip/message.ts';
import type { TlsEndpoint } from '../../src/net/tls-options.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { TtlvFramer } from '../../src/ttlv/framer.ts';
import { TestCa } from './certificates.ts';

/** What to do with one request: answer with these batch items, or drop the connection. */
export type Handler = (request: RequestMessage, index: number) => ResponseBatchItemInput[] | 'drop' | Promise<ResponseBatchItemInput[] | 'drop'>;

const ca = new TestCa('kmip-edge-scripted-ca');
const serverIdentity = ca.issue('localhost', 'server');
const clientIdentity = ca.issue('kmip-edge-test-client', 'client');

export class ScriptedServer {
  readonly requests: RequestMessage[] = [];
  private server: Server | HttpsServer | undefined;
  private readonly sockets = new Set<TLSSocket>();
  endpoint!: TlsEndpoint;

  constructor(private readonly handler: Handler) {}

  private async answer(bytes: Uint8Array): Promise<Uint8Array | 'drop'> {
    const request = parseRequestMessage(decodeTtlv(bytes));
    this.requests.push(request);
    const items = await this.handler(request, this.requests.length - 1);
    return items === 'drop' ? 'drop' : encodeTtlv(buildResponseMessage(request.protocolVersion, items));
  }

  async start(kind: 'ttlv' | 'https' = 'ttlv'): Promise<this> {
    const tls = { ...serverIdentity, ca: ca.cert, requestCert: true, rejectUnauthorized: true };
    if (kind === 'ttlv') {
      this.server = createServer(tls, (socket: TLSSocket) => {
        const framer = new TtlvFramer();
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => socket.destroy());
        socket.on('data', async (chunk: Buffer) => {
          for (const message of framer.push(chunk)) {
            const response = await this.answer(message);
            if (response === 'drop') socket.destroy();
            else socket.write(response);
          }
        });
      });
    } else {
      this.server = createHttpsServer(tls, (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', async () => {
          const response = await this.answer(new Uint8Array(Buffer.concat(chunks)));
          if (response === 'drop') return void req.socket.destroy();
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': response.length });
          res.end(response);
        });
      });
    }
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as { port: number };
    this.endpoint = { host: '127.0.0.1', port, ca: ca.cert, ...clientIdentity };
    return this;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      (this.server as Server).close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
      if ('closeAllConnections' in this.server) this.server.closeAllConnections();
    });
  }
}
