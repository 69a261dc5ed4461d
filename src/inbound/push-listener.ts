/**
 * The listener for server-initiated Put and Notify (ARCHITECTURE.md layer 7, §3; KMIP Usage
 * Guide §4.3). Mutual TLS against the configured CA, and then the peer must be the registered
 * upstream (invariant 6): its certificate pinned by SHA-256 fingerprint, or valid for the
 * upstream's host name (RFC 6125, as a client checks a server) — anything else is disconnected
 * before a byte of it is read. Each Put/Notify is applied durably by `apply`, and only then
 * answered with Success: that response is the acknowledgement. Other operations get Operation Not
 * Supported; a malformed message gets Invalid Message and the connection is closed.
 */
import { X509Certificate } from 'node:crypto';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { isKmipEdgeError } from '../errors.ts';
import { buildResponseMessage, parseRequestMessage, type ProtocolVersion, type ResponseBatchItemInput } from '../kmip/message.ts';
import { readPush, type Push } from '../kmip/push.ts';
import { Operation, ResultReason, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import { silentLogger, type Logger } from '../log.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { DEFAULT_TTLV_LIMITS } from '../ttlv/limits.ts';
import { TtlvFramer } from '../ttlv/framer.ts';

/** Who the registered upstream is: a pinned certificate, or else the host name it must be valid for. */
export interface UpstreamIdentity {
  /** PEM of the upstream's certificate: the peer must present exactly this one. */
  certificate?: string | Buffer;
  /** The name (DNS or IP) the peer's certificate must be valid for; used when no certificate is pinned. */
  hostName?: string;
}

export interface PushListenerOptions {
  host: string;
  port: number;
  /** PEM: the CA the upstream's certificate chains to, and the listener's own identity. */
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
  upstream: UpstreamIdentity;
  /** Applies one push durably; resolves once it is on disk (then it is acknowledged). */
  apply: (push: Push) => Promise<unknown>;
  log?: Logger;
  /** A push is one key and its attributes: 256 KiB is generous (certificates, long names). */
  maxMessageBytes?: number;
}

const LIMITS = { ...DEFAULT_TTLV_LIMITS, maxMessageBytes: 256 * 1024 };

export class PushListener {
  /** Connections refused because the peer is not the registered upstream, and pushes acknowledged. */
  readonly counts = { refused: 0, acknowledged: 0, failed: 0 };
  private readonly sockets = new Set<TLSSocket>();

  private constructor(
    private readonly server: Server,
    private readonly options: PushListenerOptions,
    private readonly log: Logger,
    private readonly pinned: string | undefined,
  ) {}

  static async start(options: PushListenerOptions): Promise<PushListener> {
    if (options.upstream.certificate === undefined && options.upstream.hostName === undefined) throw new TypeError('the registered upstream needs a pinned certificate or a host name');
    const pinned = options.upstream.certificate === undefined ? undefined : new X509Certificate(options.upstream.certificate).fingerprint256;
    const server = createServer({ ca: options.ca, cert: options.cert, key: options.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' });
    const listener = new PushListener(server, options, options.log ?? silentLogger, pinned);
    server.on('secureConnection', (socket) => listener.accept(socket));
    server.on('tlsClientError', (error) => {
      listener.counts.refused++;
      listener.log.warn({ reason: error.message }, 'push connection refused in the TLS handshake');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => resolve());
    });
    return listener;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** Why the peer is not the registered upstream, or undefined when it is. */
  private notUpstream(socket: TLSSocket): string | undefined {
    const peer = socket.getPeerCertificate();
    if (!peer || !peer.raw) return 'no peer certificate';
    if (this.pinned !== undefined) return peer.fingerprint256 === this.pinned ? undefined : `certificate ${peer.fingerprint256} is not the pinned upstream certificate`;
    const x509 = new X509Certificate(peer.raw);
    const name = this.options.upstream.hostName!;
    const valid = /^[\d.]+$|:/.test(name) ? x509.checkIP(name) !== undefined : x509.checkHost(name) !== undefined;
    return valid ? undefined : `certificate of ${peer.subject?.CN ?? 'an unnamed peer'} is not valid for the upstream ${name}`;
  }

  private accept(socket: TLSSocket): void {
    const refusal = this.notUpstream(socket);
    if (refusal !== undefined) {
      this.counts.refused++;
      this.log.warn({ remote: socket.remoteAddress, reason: refusal }, 'push connection refused: not the registered upstream');
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const framer = new TtlvFramer(this.options.maxMessageBytes ?? LIMITS.maxMessageBytes);
    // Messages on one connection are answered in order, each once its pushes are durable.
    let queue = Promise.resolve();
    let framingLost = false;
    socket.on('data', (chunk: Buffer) => {
      if (framingLost) return; // the connection is closing: nothing more is read
      let messages: Uint8Array[];
      try {
        messages = framer.push(chunk);
      } catch (error) {
        framingLost = true;
        this.log.warn({ reason: (error as Error).message }, 'push connection closed: framing lost');
        void queue.then(() => socket.end(encodeTtlv(invalidMessageResponse({ major: 1, minor: 0 }, (error as Error).message))));
        return;
      }
      for (const message of messages) {
        queue = queue.then(async () => {
          if (socket.destroyed) return;
          const { response, close } = await this.answer(message);
          if (close) socket.end(response);
          else socket.write(response);
        });
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.sockets.delete(socket));
  }

  /** The response to one message; `close` when the message was malformed. */
  private async answer(bytes: Uint8Array): Promise<{ response: Uint8Array; close: boolean }> {
    let request;
    try {
      request = parseRequestMessage(decodeTtlv(bytes, { ...LIMITS, maxMessageBytes: this.options.maxMessageBytes ?? LIMITS.maxMessageBytes }));
    } catch (error) {
      this.log.warn({ reason: (error as Error).message }, 'push message invalid: answered Invalid Message, connection closed');
      return { response: encodeTtlv(invalidMessageResponse({ major: 1, minor: 0 }, (error as Error).message)), close: true };
    }
    const items: ResponseBatchItemInput[] = [];
    for (const item of request.batchItems) {
      const base = { operation: item.operation, ...(item.uniqueBatchItemId && { uniqueBatchItemId: item.uniqueBatchItemId }) };
      if (item.operation !== Operation.Put && item.operation !== Operation.Notify) {
        items.push({ ...base, resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.OperationNotSupported, resultMessage: `the agent accepts Put and Notify, not ${enumerationText(Tag.Operation, item.operation)}` });
        continue;
      }
      try {
        const push = readPush(item.operation, item.payload);
        const outcome = await this.options.apply(push);
        this.counts.acknowledged++;
        this.log.info({ operation: push.operation, uid: push.uniqueIdentifier, outcome }, 'push acknowledged');
        items.push({ ...base, resultStatus: ResultStatus.Success, payload: [] });
      } catch (error) {
        this.counts.failed++;
        const invalid = isKmipEdgeError(error, 'KMIP_MESSAGE_INVALID');
        const unwritable = isKmipEdgeError(error) && error.code.startsWith('STORE_');
        this.log.warn({ operation: enumerationText(Tag.Operation, item.operation), code: (error as { code?: string }).code, reason: (error as Error).message }, 'push not applied: not acknowledged');
        // Not acknowledged: the server keeps it and sends it again.
        const message = invalid ? (error as Error).message : unwritable ? `${(error as { code: string }).code}: the agent cannot store the push now; send it again later` : 'the agent could not store the push';
        items.push({ ...base, resultStatus: ResultStatus.OperationFailed, resultReason: invalid ? ResultReason.InvalidMessage : ResultReason.GeneralFailure, resultMessage: message });
      }
    }
    return { response: encodeTtlv(buildResponseMessage(request.protocolVersion, items)), close: false };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
    });
  }
}

/** Invalid Message in KMIP 1.0, which every peer reads: the peer's own version is unknown here. */
function invalidMessageResponse(version: ProtocolVersion, detail: string) {
  return buildResponseMessage(version, [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.InvalidMessage, resultMessage: detail.slice(0, 200) }]);
}
