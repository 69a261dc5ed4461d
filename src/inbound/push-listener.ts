/**
 * The listener for server-initiated Put and Notify (ARCHITECTURE.md layer 7, §3; KMIP Usage
 * Guide §4.3). Mutual TLS against the configured CA, and then the peer must be the registered
 * upstream (invariant 6). By default (issue #12 §6) that is the key the upstream presented on the
 * agent's own verified connections (`learned`: SPKI digests, see src/agent/upstream-peers.ts) — no
 * configuration, and no other certificate of the CA passes, the agent's own client certificate
 * included; until the agent has connected upstream once, pushes are refused and a connection is
 * asked for (the server resends). Explicitly: a pinned certificate (SHA-256 fingerprint), or any
 * certificate valid for the upstream's host name (RFC 6125, as a client checks a server).
 * Anything else is disconnected before a byte of it is read. Each Put/Notify is applied durably
 * by `apply`, and only then answered with Success: that response is the acknowledgement. Other
 * operations get Operation Not Supported; a malformed message gets Invalid Message (after the
 * answers to the whole messages before it) and the connection is closed.
 *
 * Connections are bounded (issue #13.5): at most `maxConnections`, a TLS handshake within
 * `handshakeTimeoutMs`, the bytes of one message within `readTimeoutMs` of each other, the next
 * message within `idleTimeoutMs` — a peer that stalls is disconnected and its descriptor freed.
 * TLS 1.2 suites are ECDHE with AES-GCM or ChaCha20-Poly1305 only (forward secrecy, no CCM8 or
 * ARIA; TLS 1.3 as OpenSSL has it), unless `ciphers` says otherwise for an old key server.
 */
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { spkiSha256 } from '../net/ttlv-connection.ts';
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

/** The keys the upstream presented on the agent's own verified connections (UpstreamPeers). */
export interface LearnedUpstream {
  readonly size: number;
  has(spkiSha256: string): boolean;
  /** Connect to the upstream now, to learn (again) what it presents; failures are the caller's to log. */
  learn(): Promise<void>;
}

/** Who the registered upstream is: exactly one of a pinned certificate, a host name, or what was learned. */
export interface UpstreamIdentity {
  /** PEM of the upstream's certificate: the peer must present exactly this one. */
  certificate?: string | Buffer;
  /** The name (DNS or IP) the peer's certificate must be valid for. */
  hostName?: string;
  /** The default: the peer presents a key the upstream presented to the agent. */
  learned?: LearnedUpstream;
}

/**
 * TLS 1.3 suites, then TLS 1.2 with ECDHE and an AEAD of AES-GCM or ChaCha20-Poly1305 (forward
 * secrecy; no static RSA, CBC, CCM8, ARIA or Camellia) — issue #13.8; `ciphers` overrides.
 */
export const PUSH_LISTENER_CIPHERS = [
  'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');

/** Connection bounds (issue #13.5): a push is one short exchange; an upstream needs few at once. */
export const PUSH_LISTENER_LIMITS = Object.freeze({ maxConnections: 32, handshakeTimeoutMs: 10_000, readTimeoutMs: 10_000, idleTimeoutMs: 60_000 });
/** A refused push with nothing learned asks for an upstream connection at most this often. */
const LEARN_EVERY_MS = 5000;

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
  /** OpenSSL cipher list (TLS 1.2 names and TLS_… 1.3 names); default PUSH_LISTENER_CIPHERS. */
  ciphers?: string;
  /** Defaults: PUSH_LISTENER_LIMITS. */
  maxConnections?: number;
  handshakeTimeoutMs?: number;
  readTimeoutMs?: number;
  idleTimeoutMs?: number;
}

const LIMITS = { ...DEFAULT_TTLV_LIMITS, maxMessageBytes: 256 * 1024 };

export class PushListener {
  /** Connections refused because the peer is not the registered upstream, and pushes acknowledged. */
  readonly counts = { refused: 0, acknowledged: 0, failed: 0, timedOut: 0, overCapacity: 0 };
  private readonly sockets = new Set<TLSSocket>();
  /** Every TCP connection, handshaken or not (to close them all on close). */
  private readonly connections = new Set<Socket>();
  private learnedAt = 0;
  private lastCapacityWarning = 0;

  private constructor(
    private readonly server: Server,
    private readonly options: PushListenerOptions,
    private readonly log: Logger,
    private readonly pinned: string | undefined,
  ) {}

  static async start(options: PushListenerOptions): Promise<PushListener> {
    const identities = [options.upstream.certificate, options.upstream.hostName, options.upstream.learned].filter((v) => v !== undefined).length;
    if (identities !== 1) throw new TypeError('the registered upstream is one of: a pinned certificate, a host name, the learned upstream');
    const pinned = options.upstream.certificate === undefined ? undefined : new X509Certificate(options.upstream.certificate).fingerprint256;
    const server = createServer({
      ca: options.ca, cert: options.cert, key: options.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2',
      ciphers: options.ciphers ?? PUSH_LISTENER_CIPHERS, honorCipherOrder: true,
      handshakeTimeout: options.handshakeTimeoutMs ?? PUSH_LISTENER_LIMITS.handshakeTimeoutMs,
    });
    server.maxConnections = options.maxConnections ?? PUSH_LISTENER_LIMITS.maxConnections;
    const listener = new PushListener(server, options, options.log ?? silentLogger, pinned);
    server.on('connection', (raw: Socket) => {
      listener.connections.add(raw);
      raw.once('close', () => listener.connections.delete(raw));
    });
    server.on('secureConnection', (socket) => listener.accept(socket));
    server.on('tlsClientError', (error, socket) => {
      // Node leaves the socket open after a failed or timed-out handshake when this event has a
      // listener: without the destroy, every stalled peer keeps a descriptor for ever.
      socket.destroy();
      listener.counts.refused++;
      listener.log.warn({ event: 'push_connection_refused', reason: error.message }, 'push connection refused in the TLS handshake');
    });
    server.on('drop', () => {
      listener.counts.overCapacity++;
      if (Date.now() - listener.lastCapacityWarning < 60_000) return; // one line a minute, the count says the rest
      listener.lastCapacityWarning = Date.now();
      listener.log.warn({ maxConnections: server.maxConnections, dropped: listener.counts.overCapacity }, 'push connection dropped: the listener is at its connection limit');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => resolve());
    });
    if (options.upstream.learned?.size === 0) listener.learn();
    return listener;
  }

  /** Connects upstream to learn its key (at most every LEARN_EVERY_MS); the server resends the push meanwhile refused. */
  private learn(): void {
    const learned = this.options.upstream.learned;
    if (!learned || Date.now() - this.learnedAt < LEARN_EVERY_MS) return;
    this.learnedAt = Date.now();
    learned.learn().catch((error: unknown) => this.log.warn({ reason: (error as Error).message }, 'cannot reach the upstream to learn its certificate: pushes stay refused until it is known'));
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** Why the peer is not the registered upstream, or undefined when it is. */
  private notUpstream(socket: TLSSocket): string | undefined {
    const peer = socket.getPeerCertificate();
    if (!peer || !peer.raw) return 'no peer certificate';
    if (this.pinned !== undefined) return peer.fingerprint256 === this.pinned ? undefined : `certificate ${peer.fingerprint256} is not the pinned upstream certificate`;
    const learned = this.options.upstream.learned;
    if (learned) {
      const spki = spkiSha256(peer.raw);
      if (learned.has(spki)) return undefined;
      this.learn(); // the upstream may have a new key: look again (the real upstream resends)
      return learned.size === 0
        ? 'the upstream\'s certificate is not known yet (learned on the agent\'s first connection to it, asked for now)'
        : `certificate of ${peer.subject?.CN ?? 'an unnamed peer'} (SPKI sha256 ${spki}) is not the one the upstream presents`;
    }
    const x509 = new X509Certificate(peer.raw);
    const name = this.options.upstream.hostName!;
    const valid = /^[\d.]+$|:/.test(name) ? x509.checkIP(name) !== undefined : x509.checkHost(name) !== undefined;
    return valid ? undefined : `certificate of ${peer.subject?.CN ?? 'an unnamed peer'} is not valid for the upstream ${name}`;
  }

  private accept(socket: TLSSocket): void {
    const refusal = this.notUpstream(socket);
    if (refusal !== undefined) {
      this.counts.refused++;
      this.log.warn({ event: 'push_connection_refused', remote: socket.remoteAddress, reason: refusal }, 'push connection refused: not the registered upstream');
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const framer = new TtlvFramer(this.options.maxMessageBytes ?? LIMITS.maxMessageBytes);
    // Messages on one connection are answered in order, each once its pushes are durable.
    let queue = Promise.resolve();
    let answering = 0;
    let framingLost = false;
    let ended = false;
    const finish = (last: Uint8Array) => {
      if (ended || socket.destroyed) return;
      ended = true;
      socket.end(last);
    };
    // No timeout while answers are being worked out (the peer waits for us); otherwise the bytes of
    // a message must keep coming, and the next message must come within the idle time.
    const arm = () => socket.setTimeout(answering > 0 ? 0 : framer.pendingBytes > 0 ? (this.options.readTimeoutMs ?? PUSH_LISTENER_LIMITS.readTimeoutMs) : (this.options.idleTimeoutMs ?? PUSH_LISTENER_LIMITS.idleTimeoutMs));
    arm();
    socket.on('timeout', () => {
      this.counts.timedOut++;
      this.log.info({ remote: socket.remoteAddress, partialMessage: framer.pendingBytes > 0 }, 'push connection closed: the peer went quiet');
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      if (framingLost) return; // the connection is closing: nothing more is read
      const { messages, error } = framer.pushSome(chunk);
      for (const message of messages) {
        answering++;
        queue = queue.then(async () => {
          try {
            if (ended || socket.destroyed) return;
            const { response, close } = await this.answer(message);
            if (close) {
              framingLost = true;
              finish(response);
            } else if (!ended && !socket.destroyed) socket.write(response);
          } finally {
            answering--;
            if (!socket.destroyed) arm();
          }
        });
      }
      if (error) {
        // Framing lost: the whole messages before it are answered, then Invalid Message and close.
        framingLost = true;
        this.log.warn({ reason: error.message, answeredBefore: messages.length }, 'push connection closed: framing lost');
        queue = queue.then(() => finish(encodeTtlv(invalidMessageResponse({ major: 1, minor: 0 }, error.message))));
        return;
      }
      arm();
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
        this.log.info({ event: 'push_acknowledged', operation: push.operation, uid: push.uniqueIdentifier, outcome }, 'push acknowledged');
        items.push({ ...base, resultStatus: ResultStatus.Success, payload: [] });
      } catch (error) {
        this.counts.failed++;
        const invalid = isKmipEdgeError(error, 'KMIP_MESSAGE_INVALID');
        const unwritable = isKmipEdgeError(error) && error.code.startsWith('STORE_');
        this.log.warn({ event: 'push_apply_failed', operation: enumerationText(Tag.Operation, item.operation), code: (error as { code?: string }).code, reason: (error as Error).message }, 'push not applied: not acknowledged');
        // Not acknowledged: the server keeps it and sends it again.
        const message = invalid ? (error as Error).message : unwritable ? `${(error as { code: string }).code}: the agent cannot store the push now; send it again later` : 'the agent could not store the push';
        const foreign = isKmipEdgeError(error, 'PUSH_FOREIGN_MATERIAL');
        items.push({ ...base, resultStatus: ResultStatus.OperationFailed, resultReason: invalid ? ResultReason.InvalidMessage : foreign ? ResultReason.IllegalOperation : ResultReason.GeneralFailure, resultMessage: foreign ? (error as Error).message : message });
      }
    }
    return { response: encodeTtlv(buildResponseMessage(request.protocolVersion, items)), close: false };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
      for (const socket of this.connections) socket.destroy();
    });
  }
}

/** Invalid Message in KMIP 1.0, which every peer reads: the peer's own version is unknown here. */
function invalidMessageResponse(version: ProtocolVersion, detail: string) {
  return buildResponseMessage(version, [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.InvalidMessage, resultMessage: detail.slice(0, 200) }]);
}
