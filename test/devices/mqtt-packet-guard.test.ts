/**
 * The MQTT packet-size guard (src/devices/mqtt-packet-guard.ts) on bytes written by mqtt-packet
 * itself: packets at the limit pass unchanged, one byte over is a PUBLISH without its payload
 * (still acknowledgeable) or the end of the connection; every split of the input across reads
 * gives the same result; malformed lengths are refused.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mqttPacket from 'mqtt-packet';
import fc from 'fast-check';
import { PacketSizeGuard, type Oversized } from '../../src/devices/mqtt-packet-guard.ts';

const LIMIT = 200;

function encode(packet: Record<string, unknown>, protocolVersion: 4 | 5): Buffer {
  return mqttPacket.generate(packet as unknown as mqttPacket.Packet, { protocolVersion });
}

function publish(size: number, protocolVersion: 4 | 5, qos: 0 | 1 = 1, properties?: Record<string, unknown>): Buffer {
  // Grow the payload until the whole packet is `size` bytes (the varint may grow with it).
  for (let payload = Math.max(0, size - 40); ; payload++) {
    const bytes = encode({ cmd: 'publish', topic: 'kmip-edge/dev-1/up', payload: Buffer.alloc(payload, 7), qos, messageId: qos ? 42 : undefined, ...(properties && { properties }) }, protocolVersion);
    if (bytes.length === size) return bytes;
    if (bytes.length > size) throw new Error(`no publish of exactly ${size} bytes`);
  }
}

function parse(bytes: Buffer, protocolVersion: 4 | 5): mqttPacket.Packet[] {
  const parser = mqttPacket.parser({ protocolVersion });
  const packets: mqttPacket.Packet[] = [];
  parser.on('packet', (packet) => packets.push(packet));
  parser.on('error', (error) => {
    throw error;
  });
  parser.parse(bytes);
  return packets;
}

function run(input: Buffer, splits: number[], protocolVersion: 4 | 5, truncatePublish = true): { out: Buffer; oversized: Oversized[] } {
  const oversized: Oversized[] = [];
  const guard = new PacketSizeGuard({ maxPacketBytes: LIMIT, protocolVersion, truncatePublish, onOversized: (packet) => oversized.push(packet) });
  const parts: Buffer[] = [];
  let at = 0;
  for (const cut of [...splits.filter((s) => s > 0 && s < input.length)].sort((a, b) => a - b).concat(input.length)) {
    parts.push(...guard.feed(input.subarray(at, cut)));
    at = cut;
  }
  return { out: Buffer.concat(parts), oversized };
}

for (const protocolVersion of [4, 5] as const) {
  describe(`MQTT ${protocolVersion === 4 ? '3.1.1' : '5'} packet-size guard`, () => {
    it('a PUBLISH of exactly the limit passes unchanged; one byte over passes without its payload, the same topic, QoS and packet id', () => {
      const atLimit = publish(LIMIT, protocolVersion);
      assert.deepEqual(run(atLimit, [], protocolVersion), { out: atLimit, oversized: [] });
      const over = publish(LIMIT + 1, protocolVersion, 1, protocolVersion === 5 ? { userProperties: { a: 'b' }, contentType: 'x' } : undefined);
      const { out, oversized } = run(over, [], protocolVersion);
      assert.deepEqual(oversized, [{ topic: 'kmip-edge/dev-1/up', bytes: LIMIT + 1 }]);
      const [packet, ...rest] = parse(out, protocolVersion) as mqttPacket.IPublishPacket[];
      assert.equal(rest.length, 0);
      assert.equal(packet!.topic, 'kmip-edge/dev-1/up');
      assert.equal(packet!.qos, 1);
      assert.equal(packet!.messageId, 42);
      assert.equal(packet!.payload.length, 0);
    });

    it('a huge PUBLISH announced by its header is skipped, not held: what follows it is passed on', () => {
      const huge = publish(70_000, protocolVersion, 0);
      const after = encode({ cmd: 'pingresp' }, protocolVersion);
      const { out, oversized } = run(Buffer.concat([huge, after]), [3, 9, 40_000], protocolVersion);
      assert.deepEqual(oversized.map((o) => o.bytes), [70_000]);
      assert.deepEqual(parse(out, protocolVersion).map((p) => p.cmd), ['publish', 'pingresp']);
      assert.ok(out.length < 100);
    });

    it('any split of a stream of packets across reads gives the same output', () => {
      const stream = Buffer.concat([
        encode({ cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false }, protocolVersion),
        publish(LIMIT, protocolVersion),
        publish(LIMIT + 57, protocolVersion),
        encode({ cmd: 'suback', messageId: 3, granted: [1] }, protocolVersion),
        publish(30, protocolVersion, 0),
        publish(5_000, protocolVersion, 1),
        encode({ cmd: 'pingresp' }, protocolVersion),
      ]);
      const whole = run(stream, [], protocolVersion);
      assert.deepEqual(parse(whole.out, protocolVersion).map((p) => p.cmd), ['connack', 'publish', 'publish', 'suback', 'publish', 'publish', 'pingresp']);
      const byteByByte = run(stream, Array.from({ length: stream.length }, (_, i) => i), protocolVersion);
      assert.deepEqual(byteByByte, whole);
      fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }), (splits) => {
        assert.deepEqual(run(stream, splits, protocolVersion), whole);
      }));
    });

    it('an oversized packet other than PUBLISH, or any oversized packet on the broker side, ends the connection', () => {
      const suback = encode({ cmd: 'suback', messageId: 3, granted: Array.from({ length: LIMIT }, () => 1) }, protocolVersion);
      assert.throws(() => run(suback, [], protocolVersion), { code: 'MQTT_PACKET_TOO_LARGE' });
      assert.throws(() => run(publish(LIMIT + 1, protocolVersion), [], protocolVersion, false), { code: 'MQTT_PACKET_TOO_LARGE', message: `an MQTT packet of ${LIMIT + 1} bytes exceeds the limit of ${LIMIT}` });
      assert.deepEqual(run(publish(LIMIT, protocolVersion), [], protocolVersion, false).oversized, []);
    });
  });
}

it('malformed input is refused: a remaining length of five bytes, a topic longer than its packet', () => {
  assert.throws(() => run(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), [], 4), { code: 'MQTT_MALFORMED' });
  // PUBLISH of 300 bytes whose topic length says 1000.
  const bad = Buffer.concat([Buffer.from([0x30, 0xac, 0x02, 0x03, 0xe8]), Buffer.alloc(298)]);
  assert.throws(() => run(bad, [], 4), { code: 'MQTT_MALFORMED' });
});
