/**
 * One TLS connection carrying framed TTLV (KMIP 1.2 §10, FACTS.md §1.5): a request is written
 * whole, the response is read by the framer (8-byte header, then exactly `length` bytes, refused
 * from the header when over the limit). One request in flight at a time, as KMIP servers expect.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { KmipEdgeError } from '../errors.ts';
import type { ProtocolVersion } from '../kmip/message.ts';
import { TtlvFramer } from '../ttlv/framer.ts';
import type { KmipChannel } from './transport.ts';

/** Codes: NET_CONNECT_FAILED, NET_TLS_FAILED, NET_TIMEOUT, NET_CLOSED, NET_PROTOCOL. */
export function netError(code: string, message: string, cause?: unknown): KmipEdgeError {
  return new KmipEdgeError(code, message, cause === undefined ? undefined : { cause });
}

/** TLS and certificate failures say what was wrong with whose certificate. */
function describeTlsFailure(error: NodeJS.ErrnoException, where: string): KmipEdgeError {
  const code = error.code ?? '';
  const tls = /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS|ERR_SSL|HOSTNAME|ALTNAME|alert/i.test(code + error.message);
  if (!tls) return netError('NET_CONNECT_FAILED', `cannot connect to ${where}: ${error.message}`, error);
  const reason =
    code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? `the server certificate is not for this host name (${error.message})`
    : code === 'CERT_HAS_EXPIRED' ? 'the server certificate has expired'
    : code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || code === 'SELF_SIGNED_CERT_IN_CHAIN' || code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' || code === 'DEPTH_ZERO_SELF_SIGNED_CERT'
      ? `the server certificate is not signed by the configured CA (${code})`
    : /^ERR_SSL_(TLSV1|SSLV3|TLSV13)_ALERT_/.test(code)
      ? `the server refused our client certificate (${code.replace(/^ERR_SSL_\w+?_ALERT_/, '').toLowerCase().replace(/_/g, ' ')})`
    : error.message;
  return netError('NET_TLS_FAILED', `TLS with ${where} failed: ${reason}`, error);
}

/**
 * SHA-256 (hex) of a certificate's SubjectPublicKeyInfo (RFC 7469 §2.4 pins keys this way): the
 * same for a certificate renewed with the same key, different for any other key.
 */
export function spkiSha256(certificateDer: Buffer): string {
  const spki = new X509Certificate(certificateDer).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}

export class TtlvConnection implements KmipChannel {
  negotiatedVersion: ProtocolVersion | undefined;
  /**
   * The SPKI digest of the certificate the server presented — verified against the CA and the
   * server's name by the handshake (the Put/Notify listener's default check compares with it).
   */
  readonly peerSpkiSha256: string | undefined;
  private readonly framer: TtlvFramer;
  private pending: { resolve: (m: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  private constructor(
    private readonly socket: TLSSocket,
    private readonly where: string,
    maxResponseBytes: number,
  ) {
    this.framer = new TtlvFramer(maxResponseBytes);
    const peer = socket.getPeerCertificate();
    this.peerSpkiSha256 = peer?.raw ? spkiSha256(peer.raw) : undefined;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(describeTlsFailure(error, where)));
    socket.on('close', () => this.fail(netError('NET_CLOSED', `${where} closed the connection`)));
  }

  /** Opens a connection and completes the TLS handshake, verifying the server. */
  static open(options: ConnectionOptions, timeoutMs: number, maxResponseBytes: number): Promise<TtlvConnection> {
    const where = `${options.host}:${options.port}`;
    return new Promise((resolve, reject) => {
      const socket = connect(options);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(netError('NET_TIMEOUT', `no TLS handshake with ${where} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new TtlvConnection(socket, where, maxResponseBytes));
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(describeTlsFailure(error, where));
      });
    });
  }

  get isOpen(): boolean {
    return this.failure === undefined;
  }

  roundTrip(request: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) return Promise.reject(new Error('TtlvConnection: one request at a time'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(netError('NET_TIMEOUT', `no response from ${this.where} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending = {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.socket.write(request);
    });
  }

  close(): void {
    this.fail(netError('NET_CLOSED', `connection to ${this.where} closed by us`));
  }

  private onData(chunk: Buffer): void {
    let messages: Uint8Array[];
    try {
      messages = this.framer.push(chunk);
    } catch (error) {
      this.fail(error as Error);
      return;
    }
    for (const message of messages) {
      const pending = this.pending;
      if (!pending) {
        this.fail(netError('NET_PROTOCOL', `${this.where} sent a message nobody asked for`));
        return;
      }
      this.pending = undefined;
      pending.resolve(message);
    }
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.socket.destroy();
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(error);
  }
}
