/**
 * The KMIP HTTPS profile (KMIP Additional Message Encodings §2, FACTS.md §6): each KMIP message is
 * POSTed as application/octet-stream to a configurable path; the body of the 200 response is the
 * KMIP response. Same TLS rules as TTLV: mutual authentication, the server always verified.
 */
import { Agent, request } from 'node:https';
import { DEFAULT_TTLV_LIMITS } from '../ttlv/limits.ts';
import type { ProtocolVersion } from '../kmip/message.ts';
import { tlsConnectionOptions, type TlsEndpoint } from './tls-options.ts';
import type { KmipChannel, KmipTransport } from './transport.ts';
import { netError } from './ttlv-connection.ts';

export class HttpsTransport implements KmipTransport, KmipChannel {
  negotiatedVersion: ProtocolVersion | undefined;
  private readonly agent: Agent;
  private readonly endpoint: TlsEndpoint;

  constructor(
    endpoint: TlsEndpoint,
    private readonly path = '/kmip',
    options: { maxConnections?: number; maxResponseBytes?: number } = {},
  ) {
    this.endpoint = endpoint;
    this.agent = new Agent({ ...tlsConnectionOptions(endpoint), keepAlive: true, maxSockets: options.maxConnections ?? 4 });
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_TTLV_LIMITS.maxMessageBytes;
  }

  private readonly maxResponseBytes: number;

  async acquire(): Promise<KmipChannel> {
    return this; // HTTP requests are independent; the agent pools the sockets
  }

  release(): void {}

  async close(): Promise<void> {
    this.agent.destroy();
  }

  roundTrip(body: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const where = `https://${this.endpoint.host}:${this.endpoint.port}${this.path}`;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          ...tlsConnectionOptions(this.endpoint),
          agent: this.agent,
          method: 'POST',
          path: this.path,
          headers: { 'content-type': 'application/octet-stream', 'content-length': body.length, 'cache-control': 'no-cache' },
          timeout: timeoutMs,
        },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(netError('NET_PROTOCOL', `${where} answered HTTP ${res.statusCode}`));
            return;
          }
          const declared = Number(res.headers['content-length'] ?? 0);
          if (declared > this.maxResponseBytes) {
            res.destroy();
            reject(netError('NET_PROTOCOL', `${where} sends ${declared} bytes, over the limit of ${this.maxResponseBytes}`));
            return;
          }
          const chunks: Buffer[] = [];
          let total = 0;
          res.on('data', (chunk: Buffer) => {
            total += chunk.length;
            if (total > this.maxResponseBytes) {
              res.destroy(netError('NET_PROTOCOL', `${where} response exceeds ${this.maxResponseBytes} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks, total))));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(netError('NET_TIMEOUT', `no response from ${where} within ${timeoutMs} ms`)));
      req.on('error', (error) => reject((error as { code?: string }).code?.startsWith('NET_') ? error : netError('NET_CONNECT_FAILED', `${where}: ${error.message}`, error)));
      req.end(body);
    });
  }
}
