/**
 * The MQTT binding (firmware-bridge/PROTOCOL.md §6): devices publish frames to
 * `<prefix>/<device_id>/up` and read replies from `<prefix>/<device_id>/down`, QoS 1. The
 * transport only moves frames; the device service decides. TCP no-delay on the socket, or every
 * request/response costs ~88 ms of Nagle (TOOLCHAIN.md); reconnects and resubscribes.
 */
import { createConnection, type Socket } from 'node:net';
import { MqttClient, type IClientOptions } from 'mqtt';
import { KmipEdgeError } from '../errors.ts';

export interface MqttEndpoint {
  host: string;
  port: number;
  /** 4 = MQTT 3.1.1, 5 = MQTT 5. */
  protocolVersion?: 4 | 5;
  clientId?: string;
}

/**
 * Packets written in one turn of the event loop leave in one system call: mqtt.js writes each
 * packet on its own (a PUBACK, then a reply: two writes per request), which with no-delay is a
 * TCP segment and a wake-up of the broker each. The socket is corked at the first write of a turn
 * and uncorked once the turn's I/O callbacks, ticks and promise jobs are done (setImmediate).
 */
function coalesceWrites(socket: Socket): Socket {
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
  } as Socket['write'];
  return socket;
}

/** Connects with TCP no-delay and coalesced writes (also on every reconnect) and resolves once connected. */
export function connectMqtt(endpoint: MqttEndpoint, options: Partial<IClientOptions> = {}): Promise<MqttClient> {
  const client = new MqttClient(() => coalesceWrites(createConnection({ host: endpoint.host, port: endpoint.port, noDelay: true })), {
    protocolVersion: endpoint.protocolVersion ?? 4,
    reconnectPeriod: 500,
    connectTimeout: 5000,
    clean: true,
    ...(endpoint.clientId !== undefined && { clientId: endpoint.clientId }),
    ...options,
  });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', (error) => {
      client.end(true);
      reject(new KmipEdgeError('MQTT_CONNECT_FAILED', `MQTT ${endpoint.host}:${endpoint.port}: ${error.message}`, { cause: error }));
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
  private constructor(
    private readonly client: MqttClient,
    private readonly prefix: string,
  ) {}

  /** Subscribes to every device's up topic and answers on its down topic. */
  static async start(endpoint: MqttEndpoint, handle: FrameHandler, prefix = 'kmip-edge'): Promise<MqttDeviceTransport> {
    const client = await connectMqtt(endpoint, { clientId: endpoint.clientId ?? `kmip-edge-agent-${process.pid}` });
    const upTopic = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/([A-Za-z0-9._-]{1,64})/up$`);
    // One sender per device, made once (it is also the route the push relay keeps for the device);
    // bounded, since topics are chosen by whoever may publish to the broker.
    const senders = new Map<string, (frame: Uint8Array) => void>();
    const senderFor = (deviceId: string) => {
      let send = senders.get(deviceId);
      if (!send) {
        const downTopic = `${prefix}/${deviceId}/down`;
        send = (frame: Uint8Array) => void client.publish(downTopic, payloadOf(frame), { qos: 1 });
        if (senders.size < MAX_SENDERS) senders.set(deviceId, send);
      }
      return send;
    };
    client.on('message', (topic, payload) => {
      const match = upTopic.exec(topic);
      if (!match) return;
      const send = senderFor(match[1]!);
      void handle(frameOf(payload), match[1]!, send).then((reply) => reply && send(reply));
    });
    // Resubscribe after every (re)connect: a clean session forgets subscriptions.
    const subscribe = () => client.subscribe(`${prefix}/+/up`, { qos: 1 });
    client.on('connect', subscribe);
    await new Promise<void>((resolve, reject) => client.subscribe(`${prefix}/+/up`, { qos: 1 }, (error) => (error ? reject(error) : resolve())));
    return new MqttDeviceTransport(client, prefix);
  }

  /** Sends `frame` to a device's down topic (it gets it if it is subscribed). */
  sendTo(deviceId: string, frame: Uint8Array): void {
    this.client.publish(`${this.prefix}/${deviceId}/down`, payloadOf(frame), { qos: 1 });
  }

  get topicPrefix(): string {
    return this.prefix;
  }

  /** Whether the broker connection is up now (metrics, readiness). */
  get connected(): boolean {
    return this.client.connected;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.client.end(false, {}, () => resolve()));
  }
}
