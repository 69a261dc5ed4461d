/**
 * The local KMIP endpoint's listener with real parts for its tests: a test PKI (openssl), the
 * client registry on LevelDB, and a small handler that answers Discover Versions as a KMIP server
 * does (and Invalid Message to what does not parse) — the door is tested on its own, the edge
 * KMIP service behind it has its tests. A raw TLS peer speaks bytes to it as a misbehaving
 * client would.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { requestIdText, type KmipAnswer, type KmipRequestHandler, type Principal, type RequestId } from '../../src/edge/principal.ts';
import { clientCertificate, ClientRegistry } from '../../src/endpoint/client-registry.ts';
import { invalidMessageResponse, KmipListener, type KmipListenerOptions } from '../../src/endpoint/kmip-listener.ts';
import { buildResponseMessage, parseRequestMessage, type ResponseBatchItemInput } from '../../src/kmip/message.ts';
import { payload } from '../../src/kmip/payloads.ts';
import { Operation, ResultReason, ResultStatus } from '../../src/kmip/tables.generated.ts';
import { createLogger } from '../../src/log.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { TtlvFramer } from '../../src/ttlv/framer.ts';
import { TestCa, type Issued } from '../helpers/certificates.ts';

/** Answers Discover Versions (KMIP 1.2 §4.26: the versions offered that it speaks, here 1.2 and 1.0); anything else Operation Not Supported. */
export class DiscoverVersionsHandler implements KmipRequestHandler {
  readonly calls: { principal: Principal; requestId: string; bytes: number }[] = [];
  /** Response payload padding, to make answers large (the stalled-reader test). */
  padding = 0;
  /** While set, requests wait for it (the pipelining tests). */
  gate: Promise<void> | undefined;

  /** At once, as the service answers from memory; after the gate opens while one is set. */
  handle(principal: Principal, request: Uint8Array, requestId: string | RequestId): KmipAnswer | Promise<KmipAnswer> {
    this.calls.push({ principal, requestId: requestIdText(requestId), bytes: request.length });
    return this.gate ? this.gate.then(() => this.answer(request)) : this.answer(request);
  }

  private answer(request: Uint8Array): KmipAnswer {
    let parsed;
    try {
      parsed = parseRequestMessage(decodeTtlv(request));
    } catch (error) {
      return { response: invalidMessageResponse((error as Error).message), invalid: true };
    }
    const items: ResponseBatchItemInput[] = parsed.batchItems.map((item) => item.operation === Operation.DiscoverVersions
      ? { operation: item.operation, resultStatus: ResultStatus.Success, payload: payload.discoverVersions([{ major: 1, minor: 2 }, { major: 1, minor: 0 }]) }
      : { operation: item.operation, resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.OperationNotSupported, resultMessage: 'x'.repeat(this.padding) });
    return { response: encodeTtlv(buildResponseMessage(parsed.protocolVersion, items)), invalid: false };
  }
}

export interface Pki {
  ca: TestCa;
  endpoint: Issued;
  /** Registered as lib-1. */
  library: Issued;
  /** Another client of the same CA, registered as lib-2. */
  library2: Issued;
  /** Of the same CA, never registered. */
  stranger: Issued;
  /** Another CA, and a client certificate of it with the registered client's name. */
  otherCa: TestCa;
  impostor: Issued;
}

let pki: Pki | undefined;
/** One PKI for a test file (openssl is slow on a shared machine). */
export function testPki(): Pki {
  if (pki) return pki;
  const ca = new TestCa('kmip-edge site CA');
  const otherCa = new TestCa('another CA');
  pki = { ca, endpoint: ca.issue('kmip-edge endpoint', 'server'), library: ca.issue('tape-lib-1', 'client'), library2: ca.issue('tape-lib-2', 'client'), stranger: ca.issue('stranger', 'client'), otherCa, impostor: otherCa.issue('tape-lib-1', 'client') };
  return pki;
}

export interface Endpoint {
  listener: KmipListener;
  registry: ClientRegistry;
  handler: DiscoverVersionsHandler;
  logs: Record<string, unknown>[];
  store: LevelStore;
  pki: Pki;
  stop(): Promise<void>;
}

export async function startEndpoint(options: Partial<KmipListenerOptions> = {}): Promise<Endpoint> {
  const pki = testPki();
  const store = await LevelStore.open(join(mkdtempSync(join(tmpdir(), 'kmip-edge-endpoint-')), 'store'));
  const registry = new ClientRegistry(store);
  await registry.add('lib-1', clientCertificate(new X509Certificate(pki.library.cert)), { keys: [{ objectGroup: 'tapes' }] });
  await registry.add('lib-2', clientCertificate(new X509Certificate(pki.library2.cert)), { keys: [{ objectGroup: 'archive' }] });
  const handler = new DiscoverVersionsHandler();
  const logs: Record<string, unknown>[] = [];
  const log = createLogger({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const listener = await KmipListener.start({ host: '127.0.0.1', port: 0, ca: pki.ca.cert, cert: pki.endpoint.cert, key: pki.endpoint.key, clients: registry, handler, log, ...options });
  return {
    listener, registry, handler, logs, store, pki,
    async stop() {
      await listener.close();
      await store.close();
    },
  };
}

/** A TLS peer that writes raw bytes and records what comes back, framed, and when the connection ends. */
export class RawPeer {
  readonly responses: Uint8Array[] = [];
  bytesReceived = 0;
  error: Error | undefined;
  readonly closed: Promise<void>;
  readonly secured: Promise<void>;
  private readonly framer = new TtlvFramer(64 << 20);

  private constructor(readonly socket: TLSSocket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.secured = new Promise((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('close', () => reject(this.error ?? new Error('closed before the handshake completed')));
    });
    this.secured.catch(() => undefined);
    socket.on('error', (error) => (this.error = error));
    socket.on('data', (chunk: Buffer) => {
      this.bytesReceived += chunk.length;
      this.responses.push(...this.framer.push(chunk));
    });
  }

  static connect(port: number, identity: Issued, ca: Buffer, options: Pick<ConnectionOptions, 'maxVersion'> = {}): RawPeer {
    return new RawPeer(connect({ host: '127.0.0.1', port, ca, cert: identity.cert, key: identity.key, minVersion: 'TLSv1.2', rejectUnauthorized: true, ...options }));
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  get isClosed(): boolean {
    return this.socket.destroyed;
  }
}
