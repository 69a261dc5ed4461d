/**
 * The embedded MQTT broker (aedes, MQTT 3.1.1 only — TOOLCHAIN.md) for a single gateway that has
 * no Mosquitto: `kmip-edge run --embedded-broker HOST:PORT` and the demo. Frames are authenticated
 * and encrypted end to end, so the broker only moves bytes; a deployment with many devices should
 * still use Mosquitto with the per-device ACLs in deploy/. TCP no-delay on every connection, or
 * each request/response waits for Nagle (TOOLCHAIN.md). aedes buffers a packet whole, whatever
 * its size: each connection is read through the packet-size guard, which disconnects a client
 * announcing a packet over the limit (as Mosquitto's `max_packet_size` does) before it is read.
 */
import { createServer, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import { KmipEdgeError } from '../errors.ts';
import { guardConnection } from './mqtt-packet-guard.ts';
import { MQTT_MAX_PACKET_BYTES } from './mqtt-transport.ts';

export interface EmbeddedBroker {
  host: string;
  port: number;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(host = '127.0.0.1', port = 0): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    broker.handle(guardConnection(socket, { maxPacketBytes: MQTT_MAX_PACKET_BYTES, protocolVersion: 4, truncatePublish: false }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => broker.close(() => reject(new KmipEdgeError('MQTT_BROKER_FAILED', `the embedded broker cannot listen on ${host}:${port}: ${error.message}`, { cause: error }))));
    server.listen(port, host, () => resolve());
  });
  return {
    host,
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => broker.close(() => resolve()));
    }),
  };
}
