/**
 * The local KMIP endpoint (issue #16, ARCHITECTURE.md "one edge KMIP service, two doors"): the
 * second door, for KMIP-speaking clients at the edge — tape libraries, storage arrays. TTLV over
 * mutual TLS (KMIP 1.2 §10, port 5696 by convention): TLS 1.2 or later, a client certificate
 * required and verified against the configured CA; then the client's identity is the SHA-256 of
 * its certificate's SubjectPublicKeyInfo, looked up in the client registry. A certificate of that
 * CA that is not registered is disconnected before a byte of it is read, and logged with its
 * fingerprint (what `kmip-edge client add --cert` registers).
 *
 * Each message is framed from its 8-byte header (KMIP 1.2 §9.1, FACTS.md §1.5): a length over
 * `maxMessageBytes` is refused from the header alone, before anything is buffered for it. The
 * registered client and the message go to the handler (the edge KMIP service), which answers
 * with a Response Message; requests on one connection are answered in order. A message the
 * handler finds malformed (KmipAnswer.invalid) is answered — Invalid Message — and the connection
 * closed; so is lost framing (KMIP 2.1 §10.1: the stream cannot be trusted after it).
 *
 * Connections are bounded as the Put/Notify listener's are (issue #13.5): at most
 * `maxConnections` in all and `maxConnectionsPerClient` of one registered client (so that one
 * client — a tape library opening a connection per drive and never closing them, or a stolen
 * certificate — cannot take every connection from the others), a TLS handshake within `handshakeTimeoutMs`, the bytes of one message within
 * `readTimeoutMs` of each other, the next message within `idleTimeoutMs`; a peer that sends
 * without reading the answers is stopped being read from after `maxPipelined` unanswered
 * messages or a full send buffer, and disconnected when it still does not read. No input from a
 * peer ends the process: every socket error closes that socket.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { requestIdText, type KmipAnswer, type KmipRequestHandler, type LocalClient, type RequestId } from '../edge/principal.ts';
import { buildResponseMessage } from '../kmip/message.ts';
import { ResultReason, ResultStatus } from '../kmip/tables.generated.ts';
import { silentLogger, type Logger } from '../log.ts';
import { spkiSha256 } from '../net/ttlv-connection.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { TtlvFramer } from '../ttlv/framer.ts';
import { EndpointCounts } from './endpoint-counts.ts';

/** Who may connect: the registered client with this certificate key, or none (at once when known in memory). */
export interface ClientLookup {
  bySpki(spkiSha256: string): LocalClient | undefined | Promise<LocalClient | undefined>;
}

/**
 * TLS 1.3 suites; TLS 1.2 with ECDHE and an AEAD first (forward secrecy, preferred by the
 * server's order), then the two suites the KMIP 1.x Basic Authentication Suite makes mandatory
 * (KMIP Profiles 1.2-1.4 §3.1, FACTS.md §6: TLS_RSA_WITH_AES_256/128_CBC_SHA256), which older
 * tape libraries may offer alone. `ciphers` overrides (e.g. to drop the last two).
 */
export const KMIP_LISTENER_CIPHERS = [
  'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
  'AES256-SHA256', 'AES128-SHA256',
].join(':');

/**
 * Bounds (issue #13.5). A site has a few KMIP clients, each with a few connections — a tape
 * library one or two per drive, so 16 for one client is generous and leaves 48 of the 64 to the
 * others; a request is a few hundred bytes (Register of a certificate a few KiB), so 256 KiB is
 * generous; tape libraries keep a connection open between cartridges, so idle is minutes, not
 * seconds. Constants, not `run` flags: no other limit of a listener is one (RUN_FLAGS holds
 * addresses and files), and the defaults fit every site we know of.
 */
export const KMIP_LISTENER_LIMITS = Object.freeze({
  maxConnections: 64, maxConnectionsPerClient: 16, handshakeTimeoutMs: 10_000, readTimeoutMs: 10_000, idleTimeoutMs: 300_000,
  maxMessageBytes: 256 * 1024, maxPipelined: 16,
});
/** Flood-prone warnings (handshakes refused, connections over the cap) at most this often; the counts say the rest. */
const WARN_EVERY_MS = 10_000;
/** Unregistered certificates are logged each (the operator needs the fingerprint), once per this per fingerprint. */
const UNREGISTERED_EVERY_MS = 60_000;
const MAX_REMEMBERED_UNREGISTERED = 1000;

export interface KmipListenerOptions {
  host: string;
  port: number;
  /** PEM: the CA(s) local clients' certificates chain to. */
  ca: string | Buffer;
  /** PEM: the endpoint's own certificate and key. */
  cert: string | Buffer;
  key: string | Buffer;
  clients: ClientLookup;
  handler: KmipRequestHandler;
  log?: Logger;
  /** OpenSSL cipher list (TLS 1.2 names and TLS_… 1.3 names); default KMIP_LISTENER_CIPHERS. */
  ciphers?: string;
  /** Defaults: KMIP_LISTENER_LIMITS. */
  maxMessageBytes?: number;
  maxConnections?: number;
  maxConnectionsPerClient?: number;
  handshakeTimeoutMs?: number;
  readTimeoutMs?: number;
  idleTimeoutMs?: number;
  maxPipelined?: number;
}

/** Invalid Message in KMIP 1.0, which every client reads (a message whose framing is lost has no version we could trust). */
export function invalidMessageResponse(detail: string): Uint8Array {
  return encodeTtlv(buildResponseMessage({ major: 1, minor: 0 }, [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.InvalidMessage, resultMessage: detail.slice(0, 200) }]));
}

function generalFailureResponse(): Uint8Array {
  return encodeTtlv(buildResponseMessage({ major: 1, minor: 0 }, [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.GeneralFailure, resultMessage: 'the agent could not answer this request' }]));
}

export class KmipListener {
  readonly counts = new EndpointCounts();
  /** Every TCP connection, handshaken or not (to close them all on close). */
  private readonly connections = new Set<Socket>();
  private readonly warnedAt = new Map<string, number>();
  private readonly unregisteredAt = new Map<string, number>();
  /** Connections being served, by registered client id (at most maxConnectionsPerClient each). */
  private readonly perClient = new Map<string, number>();
  /** Requests are named `<client>:<boot>:<connection>:<sequence>`: unique across restarts too (a usage grant is idempotent by its request id). */
  private readonly boot = randomBytes(6).toString('hex');
  private connectionNumber = 0;
  /** Each served connection's timeout check, run by `sweeper` every `sweepMs`. */
  private readonly sweeps = new Set<(sweepMs: number) => void>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly limits: { [K in keyof typeof KMIP_LISTENER_LIMITS]: number };

  private constructor(
    private readonly server: Server,
    private readonly options: KmipListenerOptions,
    private readonly log: Logger,
  ) {
    this.limits = {
      maxConnections: options.maxConnections ?? KMIP_LISTENER_LIMITS.maxConnections,
      maxConnectionsPerClient: options.maxConnectionsPerClient ?? KMIP_LISTENER_LIMITS.maxConnectionsPerClient,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? KMIP_LISTENER_LIMITS.handshakeTimeoutMs,
      readTimeoutMs: options.readTimeoutMs ?? KMIP_LISTENER_LIMITS.readTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs ?? KMIP_LISTENER_LIMITS.idleTimeoutMs,
      maxMessageBytes: options.maxMessageBytes ?? KMIP_LISTENER_LIMITS.maxMessageBytes,
      maxPipelined: options.maxPipelined ?? KMIP_LISTENER_LIMITS.maxPipelined,
    };
  }

  static async start(options: KmipListenerOptions): Promise<KmipListener> {
    const server = createServer({
      ca: options.ca, cert: options.cert, key: options.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2',
      ciphers: options.ciphers ?? KMIP_LISTENER_CIPHERS, honorCipherOrder: true,
      handshakeTimeout: options.handshakeTimeoutMs ?? KMIP_LISTENER_LIMITS.handshakeTimeoutMs,
    });
    const listener = new KmipListener(server, options, options.log ?? silentLogger);
    server.maxConnections = listener.limits.maxConnections;
    server.on('connection', (raw: Socket) => {
      listener.connections.add(raw);
      raw.once('close', () => listener.connections.delete(raw));
    });
    server.on('secureConnection', (socket) => void listener.identify(socket));
    server.on('tlsClientError', (error, socket) => {
      // Node leaves the socket open after a failed or timed-out handshake when this event has a
      // listener: without the destroy, every stalled peer keeps a descriptor for ever.
      socket.destroy();
      const timedOut = /timed? ?out/i.test(error.message);
      listener.counts.connection(timedOut ? 'timed_out' : 'handshake_refused');
      listener.warnNowAndThen('handshake', { event: 'kmip_connection_refused', remote: socket.remoteAddress, reason: error.message, refused: listener.counts.connections.handshake_refused, timedOut: listener.counts.connections.timed_out }, 'KMIP client connection refused in the TLS handshake');
    });
    server.on('drop', () => {
      listener.counts.connection('over_capacity');
      listener.warnNowAndThen('capacity', { event: 'kmip_connection_dropped', maxConnections: server.maxConnections, dropped: listener.counts.connections.over_capacity }, 'KMIP client connection dropped: the endpoint is at its connection limit');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => resolve());
    });
    server.on('error', (error) => listener.log.error({ event: 'kmip_listener_error', err: error }, 'KMIP endpoint listener error'));
    // A quarter of the shorter time: a connection is closed at most a quarter of it late.
    const sweepMs = Math.max(1, Math.floor(Math.min(listener.limits.readTimeoutMs, listener.limits.idleTimeoutMs) / 4));
    listener.sweeper = setInterval(() => {
      for (const sweep of listener.sweeps) sweep(sweepMs);
    }, sweepMs).unref();
    return listener;
  }

  /** TCP connections open now, handshaken or not. */
  get openConnections(): number {
    return this.connections.size;
  }

  /** Connections of one registered client being served now (at most maxConnectionsPerClient). */
  connectionsOf(clientId: string): number {
    return this.perClient.get(clientId) ?? 0;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** HOST:PORT actually listened on (the port chosen when 0 was asked for). */
  get address(): string {
    const { address, port, family } = this.server.address() as { address: string; port: number; family: string };
    return family === 'IPv6' ? `[${address}]:${port}` : `${address}:${port}`;
  }

  private warnNowAndThen(kind: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    if (now - (this.warnedAt.get(kind) ?? -Infinity) < WARN_EVERY_MS) return;
    this.warnedAt.set(kind, now);
    this.log.warn(fields, message);
  }

  /** The handshake verified the chain; now the certificate's key must be a registered client's. */
  private async identify(socket: TLSSocket): Promise<void> {
    socket.on('error', () => socket.destroy()); // a reset peer is no failure of ours
    socket.pause(); // nothing is read from the peer before it is known
    const peer = socket.getPeerCertificate();
    if (!socket.authorized || !peer?.raw) {
      this.counts.connection('handshake_refused');
      socket.destroy();
      return;
    }
    const spki = spkiSha256(peer.raw);
    let client: LocalClient | undefined;
    try {
      client = await this.options.clients.bySpki(spki);
    } catch (error) {
      this.log.error({ event: 'kmip_client_lookup_failed', err: error }, 'cannot read the client registry: connection closed');
      socket.destroy();
      return;
    }
    if (socket.destroyed) return;
    if (!client) {
      this.counts.connection('unregistered');
      this.logUnregistered(spki, peer.subject?.CN, socket.remoteAddress);
      socket.destroy();
      return;
    }
    // Checked and counted with no await in between: concurrent handshakes of one client cannot both take the last place.
    const open = this.perClient.get(client.id) ?? 0;
    if (open >= this.limits.maxConnectionsPerClient) {
      this.counts.connection('over_client_limit');
      this.warnNowAndThen(`client-limit ${client.id}`, { event: 'kmip_client_connection_limit', client: client.id, open, maxConnectionsPerClient: this.limits.maxConnectionsPerClient, remote: socket.remoteAddress, refused: this.counts.connections.over_client_limit },
        `KMIP client ${client.id} refused a connection: it has ${open} open, the most one client may have`);
      socket.destroy();
      return;
    }
    this.perClient.set(client.id, open + 1);
    socket.once('close', () => {
      const left = (this.perClient.get(client.id) ?? 1) - 1;
      if (left > 0) this.perClient.set(client.id, left);
      else this.perClient.delete(client.id);
    });
    this.counts.connection('accepted');
    this.serve(socket, client, spki);
  }

  private logUnregistered(spki: string, commonName: string | string[] | undefined, remote: string | undefined): void {
    const now = Date.now();
    if (now - (this.unregisteredAt.get(spki) ?? -Infinity) < UNREGISTERED_EVERY_MS) return;
    if (this.unregisteredAt.size >= MAX_REMEMBERED_UNREGISTERED) this.unregisteredAt.clear();
    this.unregisteredAt.set(spki, now);
    this.log.warn({ event: 'kmip_client_unregistered', spkiSha256: spki, subjectCN: commonName, remote, refused: this.counts.connections.unregistered },
      `KMIP client refused: its certificate (SPKI sha256 ${spki}) is not a registered client's; register it with kmip-edge client add --id ID --cert FILE`);
  }

  private serve(socket: TLSSocket, first: LocalClient, spki: string): void {
    const connection = ++this.connectionNumber;
    const limits = this.limits;
    socket.setNoDelay(true);
    const framer = new TtlvFramer(limits.maxMessageBytes);
    this.log.debug({ event: 'kmip_client_connected', client: first.id, connection, remote: socket.remoteAddress, tls: `${socket.getProtocol()} ${socket.getCipher().name}` }, 'KMIP client connected');
    let queue = Promise.resolve();
    let sequence = 0;
    /** The request ids' part before the sequence number, made once for the client (`named`) the connection serves. */
    let named: string | undefined;
    let requestPrefix = '';
    /** Messages received and not yet answered. */
    let unanswered = 0;
    /** No more input is taken (lost framing): the messages before are still answered. */
    let reading = true;
    /** The last answer is sent (or the connection dropped): nothing more is answered. */
    let ended = false;
    /** The next answer waits for the peer to take the ones sent (bounded output per connection). */
    let draining = false;
    const end = (last: Uint8Array | undefined) => {
      reading = false;
      ended = true;
      if (socket.destroyed) return;
      if (!last) return void socket.destroy();
      // Half-close after the last answer, reading (and dropping) what still comes so that the peer
      // gets the answer rather than a reset; a peer that never closes its side is disconnected.
      socket.end(last);
      setTimeout(() => socket.destroy(), limits.readTimeoutMs).unref();
    };
    // Reading stops while the peer has maxPipelined answers coming or does not take what is sent.
    let paused = true; // until serving starts, below
    const flow = () => {
      if (socket.destroyed || !reading) return;
      const pause = unanswered >= limits.maxPipelined || socket.writableNeedDrain;
      if (pause === paused) return;
      paused = pause;
      if (pause) socket.pause();
      else socket.resume();
    };
    socket.on('drain', flow);
    // The bytes of a message must keep coming, the next message must come within the idle time,
    // and an answer the peer does not read (or a close it does not complete) must be done within
    // the read time; while answers are being worked out the peer waits for us, and no time is
    // counted. Judged by the listener's sweep (sweepMs) from the bytes moved either way since the
    // one before — not by a socket timeout, which Node refreshes on every read and write: a
    // timer list's remove and insert, twice a request (~0.25 µs of the endpoint's ~3 µs over a
    // bare TLS echo, CPU profiles of `bench kmip-endpoint`). A connection closes between the
    // time allowed and one sweep after it.
    let moved = -1;
    let quietMs = 0;
    const sweep = (sweepMs: number) => {
      const bytes = socket.bytesRead + socket.bytesWritten;
      if (bytes !== moved || (unanswered > 0 && !ended && !draining)) {
        moved = bytes;
        quietMs = 0;
        return;
      }
      quietMs += sweepMs;
      const waitingForPeer = framer.pendingBytes > 0 || socket.writableLength > 0 || ended || draining;
      if (quietMs < (waitingForPeer ? limits.readTimeoutMs : limits.idleTimeoutMs)) return;
      this.counts.connection('timed_out');
      this.log.info({ event: 'kmip_connection_timed_out', client: first.id, connection, partialMessage: framer.pendingBytes > 0, closing: ended }, 'KMIP client connection closed: the peer went quiet');
      socket.destroy();
    };
    this.sweeps.add(sweep);
    socket.once('close', () => this.sweeps.delete(sweep));
    /** Waits until the peer takes the answers sent (bounded output per connection). */
    const drained = async (): Promise<void> => {
      // A peer that does not read: no answer is worked out (nor buffered) until it takes the ones
      // sent; if it never does, the read timeout disconnects it.
      draining = true;
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
      draining = false;
    };
    const deliver = (client: LocalClient, requestId: RequestId, answer: KmipAnswer): void => {
      if (ended || socket.destroyed) return;
      if (answer.getSuccess === true) this.counts.getSuccess();
      else this.counts.response(answer.response);
      if (answer.invalid) {
        this.counts.connection('invalid_message');
        this.log.warn({ event: 'kmip_message_invalid', client: client.id, requestId: requestIdText(requestId) }, 'KMIP request invalid: answered Invalid Message, connection closed');
        end(answer.response);
        return;
      }
      socket.write(answer.response);
    };
    const handlerFailed = (client: LocalClient, requestId: RequestId, error: unknown): void => {
      // The handler never rejects (KmipRequestHandler); should it, the peer gets a generic failure and the details go to the log.
      this.log.error({ event: 'kmip_request_failed', client: client.id, requestId: requestIdText(requestId), err: error }, 'KMIP request failed in the service: connection closed');
      end(generalFailureResponse());
    };
    const respond = (client: LocalClient | undefined, message: Uint8Array): void | Promise<void> => {
      if (ended || socket.destroyed) return;
      if (!client) {
        this.log.info({ event: 'kmip_client_gone', client: first.id, connection }, 'KMIP client connection closed: the client is no longer registered');
        end(undefined);
        return;
      }
      if (client.id !== named) [named, requestPrefix] = [client.id, `${client.id}:${this.boot}:${connection}:`];
      const requestId: RequestId = { prefix: requestPrefix, sequence: ++sequence };
      let answer: KmipAnswer | Promise<KmipAnswer>;
      try {
        answer = this.options.handler.handle(client, message, requestId);
      } catch (error) {
        return handlerFailed(client, requestId, error);
      }
      if (answer instanceof Promise) return answer.then((answered) => deliver(client, requestId, answered), (error: unknown) => handlerFailed(client, requestId, error));
      deliver(client, requestId, answer);
    };
    /**
     * One message answered: in this very tick when nothing waits (the registry and the service
     * answer from memory — a Get of a cached key), otherwise once they have.
     */
    const answerOne = (message: Uint8Array): void | Promise<void> => {
      if (socket.writableNeedDrain && !socket.destroyed) return drained().then(() => answerOne(message));
      if (ended || socket.destroyed) return;
      // The registry as it is now: an update applies to the next request, a removal closes the connection.
      const found = this.options.clients.bySpki(spki);
      if (found instanceof Promise) return found.catch(() => undefined).then((client) => respond(client, message));
      return respond(found, message);
    };
    const failed = (failure: unknown) => {
      this.log.error({ event: 'kmip_request_failed', client: first.id, err: failure }, 'KMIP request failed: connection closed');
      socket.destroy();
    };
    const answered = () => {
      unanswered--;
      flow();
    };
    socket.on('data', (chunk: Buffer) => {
      if (!reading) return; // nothing more is taken from a connection that is closing
      const { messages, error } = framer.pushSome(chunk);
      for (const message of messages) {
        // In order: at once when nothing is still being answered, else after the one before.
        if (unanswered++ === 0) {
          let pending: void | Promise<void> = undefined;
          try {
            pending = answerOne(message);
          } catch (failure) {
            failed(failure);
          }
          if (pending instanceof Promise) queue = pending.catch(failed).finally(answered);
          else unanswered--; // answered in this tick: flow() follows the loop
        } else {
          queue = queue.then(() => answerOne(message)).catch(failed).finally(answered);
        }
      }
      if (error) {
        // Framing lost (not a KMIP message, or longer than allowed — known from the header, nothing
        // buffered for it): the whole messages before it are answered, then Invalid Message and close.
        reading = false;
        this.counts.connection('framing_lost');
        this.log.warn({ event: 'kmip_framing_lost', client: first.id, connection, code: error.code, reason: error.message, answeredBefore: messages.length }, 'KMIP client connection closed: framing lost');
        queue = queue.then(() => end(invalidMessageResponse(error.message)));
        return;
      }
      flow();
    });
    socket.on('close', () => this.log.debug({ event: 'kmip_client_disconnected', client: first.id, connection, requests: sequence }, 'KMIP client disconnected'));
    flow();
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const socket of this.connections) socket.destroy();
    });
  }
}
