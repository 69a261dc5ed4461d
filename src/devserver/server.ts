/**
 * The development KMIP server's listener: TTLV over mutual TLS (KMIP 1.2 §10). Clients must
 * present a certificate from the server's CA; requests on one connection are answered in order.
 * With push endpoints it sends Notify on every change and Put on request (./push.ts), and takes
 * admin requests on a local socket in its folder (`kmip-edge dev-server push`).
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo, Server as UnixServer } from 'node:net';
import { join } from 'node:path';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { KmipEdgeError } from '../errors.ts';
import { TtlvFramer } from '../ttlv/framer.ts';
import { serveJsonLines } from '../net/json-line-socket.ts';
import type { ProtocolVersion } from '../kmip/message.ts';
import { Tag } from '../kmip/tables.generated.ts';
import { interval } from '../ttlv/build.ts';
import { attributesForVersion } from './operations.ts';
import type { DevPki } from './pki.ts';
import { PushSender, type PushEndpoint, type PushRecord } from './push.ts';
import { RequestProcessor, type DevServerOptions } from './request-processor.ts';

export interface DevKmipServerOptions extends DevServerOptions {
  pushTo?: readonly PushEndpoint[];
  /** Protocol version of pushed requests (default 1.2). */
  pushVersion?: ProtocolVersion;
  /** Retry timing of pushes (tests shorten it). */
  pushRetryMs?: number;
  pushMaxAttempts?: number;
}

export const ADMIN_SOCKET = 'admin.sock';

export class DevKmipServer {
  readonly processor: RequestProcessor;
  readonly pushes: PushSender | undefined;
  private server: Server | undefined;
  private admin: UnixServer | undefined;
  private readonly sockets = new Set<TLSSocket>();

  private readonly pushVersion: ProtocolVersion;
  private readonly leaseSeconds: number;

  constructor(
    private readonly pki: DevPki,
    options: DevKmipServerOptions = {},
  ) {
    this.processor = new RequestProcessor(options);
    this.pushVersion = options.pushVersion ?? { major: 1, minor: 2 };
    this.leaseSeconds = options.leaseSeconds ?? 3600;
    if (options.pushTo && options.pushTo.length > 0) {
      const pushes = new PushSender(options.pushTo, {
        ca: readFileSync(pki.ca), cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey),
        ...(options.pushRetryMs !== undefined && { retryMs: options.pushRetryMs }),
        ...(options.pushMaxAttempts !== undefined && { maxAttempts: options.pushMaxAttempts }),
        ...(options.pushVersion !== undefined && { version: options.pushVersion }),
      });
      this.pushes = pushes;
      this.processor.onChange = (object, changed) => void pushes.notify(object.uid, changed);
    }
  }

  /**
   * Put the object `uid` to every push endpoint (New, or Replace of `replaces`) with all its
   * attributes; a Lease Time attribute grants the lease (KMIP 1.2 §5.2).
   */
  async put(uid: string, replaces?: string): Promise<PushRecord[]> {
    const object = this.processor.store.get(uid);
    if (!object) throw new KmipEdgeError('DEV_PUSH_FAILED', `no object ${uid}`);
    if (!this.pushes) throw new KmipEdgeError('DEV_PUSH_FAILED', 'no push endpoints configured (--push-to)');
    if (this.leaseSeconds > 0 && !object.attributes.has('Lease Time')) object.attributes.set('Lease Time', [interval(Tag.AttributeValue, this.leaseSeconds)]);
    await this.processor.store.flush();
    return this.pushes.put(uid, object.object, attributesForVersion(object, this.pushVersion), replaces);
  }

  /** Notify every push endpoint that `uid` changed (its Last Change Date). */
  notify(uid: string): Promise<PushRecord[]> {
    const object = this.processor.store.get(uid);
    if (!object) throw new KmipEdgeError('DEV_PUSH_FAILED', `no object ${uid}`);
    if (!this.pushes) throw new KmipEdgeError('DEV_PUSH_FAILED', 'no push endpoints configured (--push-to)');
    return this.pushes.notify(uid, attributesForVersion(object, this.pushVersion).filter((a) => a.name === 'Last Change Date'));
  }

  async listen(port: number, host = '127.0.0.1'): Promise<number> {
    this.server = createServer(
      { ca: readFileSync(this.pki.ca), cert: readFileSync(this.pki.serverCert), key: readFileSync(this.pki.serverKey), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' },
      (socket) => this.serve(socket),
    );
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  /** The admin socket: one JSON request per line, {"put":UID,"replaces"?:OLD}, {"notify":UID} or {"list":true}. */
  async listenAdmin(dir: string): Promise<string> {
    const path = join(dir, ADMIN_SOCKET);
    this.admin = await serveJsonLines(path, (line) => this.adminRequest(line), 4096);
    return path;
  }

  private async adminRequest(line: string): Promise<Record<string, unknown>> {
    try {
      const request = JSON.parse(line) as { put?: string; replaces?: string; notify?: string; list?: boolean };
      if (request.list === true) return { unacknowledged: this.pushes?.unacknowledged() ?? [] };
      const records = request.put !== undefined ? await this.put(request.put, request.replaces) : request.notify !== undefined ? await this.notify(request.notify) : undefined;
      if (!records) return { error: 'expected {"put":UID} or {"notify":UID}' };
      return { pushed: records.length, acknowledged: records.filter((r) => r.acknowledged).length, ...(records.some((r) => !r.acknowledged) && { unacknowledged: records.filter((r) => !r.acknowledged) }) };
    } catch (error) {
      return { error: (error as Error).message };
    }
  }

  private serve(socket: TLSSocket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const framer = new TtlvFramer();
    // Requests on one connection are answered in order, each only once its changes are durable.
    let queue = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      let messages: Uint8Array[];
      try {
        messages = framer.push(chunk);
      } catch {
        socket.destroy(); // framing lost (KMIP 2.x §10.1 says close); nothing sensible to answer
        return;
      }
      for (const message of messages) {
        queue = queue.then(async () => {
          const response = this.processor.process(message);
          await this.processor.store.flush();
          socket.write(response);
        }).catch(() => void socket.destroy());
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.sockets.delete(socket));
  }

  async close(): Promise<void> {
    this.pushes?.close();
    this.admin?.close();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
    });
    await this.processor.store.close();
  }
}
