/**
 * The MQTT binding (firmware-bridge/PROTOCOL.md §6): devices publish frames to
 * `<prefix>/<device_id>/up` and read replies from `<prefix>/<device_id>/down`, QoS 1. The
 * transport only moves frames; the device service decides.
 *
 * In the field the broker restarts, the network drops, the broker is not up yet when the agent
 * starts: the client reconnects forever, with capped exponential backoff and jitter (so a
 * gateway's clients do not all return in the same instant), logs each disconnect and reconnect
 * with its reason (stable `event` names), and resubscribes. The agent keeps a persistent session
 * under a stable client id, so frames devices publish while it is away are queued by the broker
 * and answered when it is back. TLS to the broker always verifies the broker (chain and host
 * name). Packets are capped at the frame limit plus headroom while they stream in
 * (mqtt-packet-guard.ts). TCP no-delay on the socket, or every request/response costs ~88 ms of
 * Nagle (TOOLCHAIN.md).
 */
import { createConnection, isIP, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { MqttClient, type IClientOptions } from 'mqtt';
import { KmipEdgeError } from '../errors.ts';
import { silentLogger, type Logger } from '../log.ts';
import { MAX_FRAME_BYTES } from './frame.ts';
import { guardConnection } from './mqtt-packet-guard.ts';
import type { MqttConnectOptions } from './mqtt-options.ts';

export { agentClientId, readMqttPassword, resolveMqttSettings, type MqttConnectOptions, type MqttSettings } from './mqtt-options.ts';

/** Kept for the callers that name it so: the same thing. */
export type MqttEndpoint = MqttConnectOptions;

/**
 * The largest MQTT packet taken from the broker: a frame (PROTOCOL.md §2) plus the PUBLISH
 * header — fixed header ≤ 5, topic ≤ 2 + prefix + 64 + 5, packet identifier 2, MQTT 5 properties
 * (none are needed; a broker may add a few bytes).
 */
export const MQTT_MAX_PACKET_BYTES = MAX_FRAME_BYTES + 1024;

/** Reconnect delays: the first after 0.5 s, doubling, at most 30 s; each drawn in [d/2, d]. */
export const RECONNECT_BASE_MS = 500;
export const RECONNECT_MAX_MS = 30_000;

/** The delay before reconnect attempt `attempt` (0 = the first): capped exponential, "equal jitter". */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * Packets written in one turn of the event loop leave in one system call: mqtt.js writes each
 * packet on its own (a PUBACK, then a reply: two writes per request), which with no-delay is a
 * TCP segment and a wake-up of the broker each. The socket is corked at the first write of a turn
 * and uncorked once the turn's I/O callbacks, ticks and promise jobs are done (setImmediate).
 */
function coalesceWrites<T extends Socket>(socket: T): T {
  const write = socket.write;
  let corked = false;
  const flush = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(flush);
    }
    return write.apply(this, args);
  } as T['write'];
  return socket;
}

function brokerName(options: MqttConnectOptions): string {
  return `${options.tls ? 'mqtts' : 'mqtt'}://${isIP(options.host) === 6 ? `[${options.host}]` : options.host}:${options.port}`;
}

/** The socket for one connection attempt: TCP or TLS (verified), no-delay, corked writes, size guard. */
function openStream(options: MqttConnectOptions, maxPacketBytes: number, onOversized: (topic: string, bytes: number) => void) {
  let socket: Socket;
  if (options.tls) {
    const serverName = options.tls.serverName ?? options.host;
    socket = connectTls({
      host: options.host,
      port: options.port,
      ...(options.tls.ca && { ca: options.tls.ca }),
      ...(options.tls.cert && { cert: options.tls.cert }),
      ...(options.tls.key && { key: options.tls.key }),
      minVersion: 'TLSv1.2',
      // SNI carries host names only (RFC 6066 §3); the certificate is still checked against an IP.
      ...(isIP(serverName) === 0 && { servername: serverName }),
      rejectUnauthorized: true,
    });
    socket.setNoDelay(true);
  } else {
    socket = createConnection({ host: options.host, port: options.port, noDelay: true });
  }
  return guardConnection(coalesceWrites(socket), {
    maxPacketBytes,
    protocolVersion: options.protocolVersion ?? 4,
    truncatePublish: true,
    onOversized: ({ topic, bytes }) => onOversized(topic, bytes),
  });
}

export interface MqttClientOptions {
  log?: Logger;
  /** mqtt.js options on top (keepalive, resubscribe, …). */
  overrides?: Partial<IClientOptions>;
  maxPacketBytes?: number;
}

/** The client's connection state, for the ready line and status. */
export type MqttState = 'connected' | 'connecting';

/**
 * An MQTT client that connects (and reconnects forever, with backoff) to the broker — started at
 * once, connected or not. Each connection failure, disconnect and reconnect is logged with its
 * reason: events `mqtt_connect_failed` and `mqtt_disconnected` (warn), `mqtt_connected` (info),
 * `mqtt_packet_too_large` (warn). No error it reports can end the process.
 */
export function createMqttClient(options: MqttConnectOptions, { log = silentLogger, overrides = {}, maxPacketBytes = MQTT_MAX_PACKET_BYTES }: MqttClientOptions = {}): MqttClient {
  const broker = brokerName(options);
  const version = options.protocolVersion ?? 4;
  const persistent = options.persistentSession ?? false;
  if (persistent && options.clientId === undefined) throw new TypeError('a persistent MQTT session needs a client id');
  let lastError: string | undefined;
  const client = new MqttClient(() => openStream(options, maxPacketBytes, (topic, bytes) => {
    log.warn({ event: 'mqtt_packet_too_large', broker, topic: topic.slice(0, 200), bytes, limit: maxPacketBytes }, 'MQTT packet over the size limit dropped unread');
  }), {
    protocolVersion: version,
    reconnectPeriod: reconnectDelay(0),
    // A refused login (wrong password, not yet in the broker's password file) is retried too.
    reconnectOnConnackError: true,
    connectTimeout: 10_000,
    keepalive: 30,
    // Off: mqtt-packet would otherwise build, on its first write, a cache of 65,536 two-byte
    // Buffers for packet ids (~7 MB of heap kept for the process's life, ~40 ms at start). The
    // flag is mqtt-packet's, for the whole process: the embedded broker's (aedes) writes too
    // (issue #15 footprint).
    writeCache: false,
    clean: !persistent,
    ...(options.clientId !== undefined && { clientId: options.clientId }),
    ...(options.username !== undefined && { username: options.username }),
    ...(options.password !== undefined && { password: options.password }),
    ...(version === 5 && {
      // MQTT 5 §3.1.2.11.4: the broker must not send us larger packets (it drops them).
      properties: { maximumPacketSize: maxPacketBytes, ...(persistent && { sessionExpiryInterval: 0xffff_ffff }) },
    }),
    ...overrides,
  });
  let attempt = 0;
  let wasConnected = false;
  client.on('reconnect', () => {
    // This attempt's failure waits the next, longer delay (mqtt.js reads reconnectPeriod when it schedules).
    client.options.reconnectPeriod = reconnectDelay(++attempt);
  });
  client.on('connect', (connack) => {
    log.info({ event: 'mqtt_connected', broker, clientId: client.options.clientId, sessionPresent: connack.sessionPresent, attempts: attempt + 1 }, 'MQTT connected');
    attempt = 0;
    wasConnected = true;
    lastError = undefined;
    client.options.reconnectPeriod = reconnectDelay(0);
  });
  client.on('error', (error: Error & { code?: string | number }) => {
    lastError = error.code !== undefined && !error.message.includes(String(error.code)) ? `${error.message} (${error.code})` : error.message;
    if (!client.connected) {
      log.warn({ event: 'mqtt_connect_failed', broker, reason: lastError, attempt: attempt + 1, retryInMs: client.options.reconnectPeriod }, 'MQTT connection failed; retrying');
    }
  });
  client.on('disconnect', (packet) => {
    // MQTT 5 §3.14.2.1: the broker says why it disconnects us.
    lastError = `the broker disconnected us (reason code ${packet.reasonCode ?? 0}${packet.properties?.reasonString ? `: ${packet.properties.reasonString}` : ''})`;
  });
  client.on('close', () => {
    if (wasConnected) {
      wasConnected = false;
      log.warn({ event: 'mqtt_disconnected', broker, reason: lastError ?? 'the connection was closed by the broker or the network', retryInMs: client.options.reconnectPeriod }, 'MQTT disconnected; reconnecting');
    } else if (lastError === undefined && !client.disconnecting) {
      // Closed before CONNACK without an error (e.g. a TLS or protocol refusal the broker did not explain).
      log.warn({ event: 'mqtt_connect_failed', broker, reason: 'the broker closed the connection before accepting it', attempt: attempt + 1, retryInMs: client.options.reconnectPeriod }, 'MQTT connection failed; retrying');
    }
    lastError = undefined;
  });
  if (options.password !== undefined && !options.tls && !isLoopback(options.host)) {
    log.warn({ event: 'mqtt_password_in_clear', broker }, 'the MQTT password is sent without TLS to a broker that is not on this host; use mqtts://');
  }
  return client;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/**
 * Connects and resolves once connected — for short-lived clients (device-sim, benchmarks, tests).
 * Until then every attempt is retried; it rejects if not connected within `timeoutMs` (naming the
 * last reason). Once connected the client keeps reconnecting after any disconnect.
 */
export function connectMqtt(options: MqttConnectOptions, extra: Partial<IClientOptions> = {}, { log, timeoutMs = 10_000 }: { log?: Logger; timeoutMs?: number } = {}): Promise<MqttClient> {
  const client = createMqttClient(options, { ...(log && { log }), overrides: extra });
  let reason: string | undefined;
  const noteError = (error: Error) => (reason = error.message);
  client.on('error', noteError);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.removeListener('error', noteError);
      client.end(true);
      reject(new KmipEdgeError('MQTT_CONNECT_FAILED', `cannot connect to the MQTT broker ${brokerName(options)} within ${timeoutMs / 1000} s: ${reason ?? 'no answer'}`));
    }, timeoutMs);
    client.once('connect', () => {
      clearTimeout(timer);
      client.removeListener('error', noteError);
      resolve(client);
    });
  });
}

/**
 * Views, not copies, between mqtt.js's Buffers and frames (a copy is an allocation per message on
 * the hot path): a received payload is a fresh slice of the socket's data, and a frame is never
 * changed after it is sent.
 */
export function frameOf(payload: Buffer): Uint8Array {
  return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
}

export function payloadOf(frame: Uint8Array): Buffer {
  return Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
}

/** Device senders kept by the transport (beyond, one is made per frame). */
const MAX_SENDERS = 100_000;

/** A frame for `deviceId`; `send` reaches that device later (relayed pushes). */
export type FrameHandler = (frame: Uint8Array, deviceId: string, send: (frame: Uint8Array) => void) => Promise<Uint8Array | undefined>;

export class MqttDeviceTransport {
  /** Subscribed on the current connection. */
  private subscribed = false;
  private readonly waiting = new Set<() => void>();

  private constructor(
    private readonly client: MqttClient,
    private readonly prefix: string,
  ) {
    client.on('close', () => (this.subscribed = false));
  }

  private onSubscribed(): void {
    this.subscribed = true;
    for (const wake of this.waiting) wake();
    this.waiting.clear();
  }

  /**
   * Subscribes to every device's up topic and answers on its down topic, on every connection.
   * `wait`: resolve once subscribed (`'connected'`, the default), or once the first connection
   * attempt succeeded or failed (`'first-attempt'`: a broker that is down is retried in the
   * background; `state` tells). With a client id the session is persistent unless `options` says otherwise.
   */
  static async start(options: MqttConnectOptions, handle: FrameHandler, prefix = 'kmip-edge', { log = silentLogger, wait = 'connected' }: { log?: Logger; wait?: 'connected' | 'first-attempt' } = {}): Promise<MqttDeviceTransport> {
    const clientId = options.clientId ?? `kmip-edge-agent-${process.pid}`;
    const client = createMqttClient({ persistentSession: options.clientId !== undefined, ...options, clientId }, { log, overrides: { resubscribe: false } });
    const upTopic = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/([A-Za-z0-9._-]{1,64})/up$`);
    // One sender per device, made once (it is also the route the push relay keeps for the device);
    // bounded, since topics are chosen by whoever may publish to the broker. While disconnected a
    // frame is not queued in memory: a device resends its request, the relay its push.
    const senders = new Map<string, (frame: Uint8Array) => void>();
    const senderFor = (deviceId: string) => {
      let send = senders.get(deviceId);
      if (!send) {
        const downTopic = `${prefix}/${deviceId}/down`;
        send = (frame: Uint8Array) => {
          if (client.connected) client.publish(downTopic, payloadOf(frame), { qos: 1 });
        };
        if (senders.size < MAX_SENDERS) senders.set(deviceId, send);
      }
      return send;
    };
    // Before the first connection: a persistent session's queued frames arrive right after CONNACK.
    client.on('message', (topic, payload) => {
      const match = upTopic.exec(topic);
      if (!match || payload.length === 0) return; // empty: an oversized packet whose payload was dropped (logged)
      const send = senderFor(match[1]!);
      handle(frameOf(payload), match[1]!, send).then((reply) => reply && send(reply), (error: unknown) => {
        log.error({ event: 'mqtt_frame_failed', device: match[1], err: error }, 'handling a device frame failed');
      });
    });
    const upFilter = `${prefix}/+/up`;
    const transport = new MqttDeviceTransport(client, prefix);
    client.on('connect', () => {
      client.subscribe(upFilter, { qos: 1 }, (error, granted) => {
        const refused = granted?.find((grant) => grant.qos >= 0x80);
        if (error || refused) {
          // A closed connection fails it too; the next connection subscribes again.
          if (client.connected) log.error({ event: 'mqtt_subscribe_failed', topic: upFilter, reason: error?.message ?? `refused by the broker (reason code ${refused!.qos}; check its ACL for this user)` }, 'MQTT subscription refused: no device frames will arrive');
        } else {
          transport.onSubscribed();
        }
      });
    });
    if (wait === 'connected') {
      await transport.ready();
    } else {
      // The first attempt ends in a subscription, an error, a close, or mqtt.js's CONNACK timeout.
      let settle!: () => void;
      const settled = new Promise<void>((resolve) => (settle = resolve));
      const timer = setTimeout(settle, 11_000);
      client.once('error', settle);
      client.once('close', settle);
      void transport.ready().then(settle);
      await settled;
      clearTimeout(timer);
      client.removeListener('error', settle);
      client.removeListener('close', settle);
    }
    return transport;
  }

  /** Resolves once connected and subscribed to the devices' up topics. */
  ready(): Promise<void> {
    if (this.subscribed) return Promise.resolve();
    return new Promise((resolve) => this.waiting.add(resolve));
  }

  get state(): MqttState {
    return this.client.connected && this.subscribed ? 'connected' : 'connecting';
  }

  /** Sends `frame` to a device's down topic (it gets it if it is subscribed). */
  sendTo(deviceId: string, frame: Uint8Array): void {
    if (this.client.connected) this.client.publish(`${this.prefix}/${deviceId}/down`, payloadOf(frame), { qos: 1 });
  }

  get topicPrefix(): string {
    return this.prefix;
  }

  close(): Promise<void> {
    // A clean DISCONNECT when connected (the session stays); at once when not.
    return new Promise((resolve) => this.client.end(!this.client.connected, {}, () => resolve()));
  }
}
