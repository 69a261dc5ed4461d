/**
 * Devices over a real Mosquitto broker (MQTT 3.1.1 and 5): a simulated device gets a key, usage
 * allocations and a lease through the agent, with the development server as the upstream; a
 * frame published on another device's topic is dropped; a device keeps resending while the
 * agent's transport is away and is answered once it returns; a frame sent once while it is away
 * is queued by the broker for its persistent session; the embedded broker refuses oversized packets.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AgentCore } from '../../src/agent/agent-core.ts';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import type { DeviceService } from '../../src/devices/device-service.ts';
import type { Device } from '../../src/devices/registry.ts';
import { MqttDevice } from '../../src/devices/mqtt-device.ts';
import { connectMqtt, MQTT_MAX_PACKET_BYTES, MqttDeviceTransport } from '../../src/devices/mqtt-transport.ts';
import { startEmbeddedBroker } from '../../src/devices/embedded-broker.ts';
import { keyBlockOf, keyMaterialOf, payload, readGet } from '../../src/kmip/payloads.ts';
import { ObjectType, Operation, ResultStatus, Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import type { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { deviceRequest, startGateway } from '../helpers/gateway.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';

let gateway: Awaited<ReturnType<typeof startGateway>>;
let broker: Awaited<ReturnType<typeof startMosquitto>>;
let service: DeviceService;
let admin: KmipClient;
let agent: AgentCore;
let tape: Device;
let keyUid: string;

before(async () => {
  [gateway, broker] = await Promise.all([startGateway(), startMosquitto()]);
  ({ service, admin, agent } = gateway);
  const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 10_000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]);
  keyUid = await admin.create(ObjectType.SymmetricKey, aesKey('mqtt-tape-key', undefined, [{ name: 'Usage Limits', value: limits }]));
  await admin.activate(keyUid);
  tape = await gateway.registry.add('tape-drive-9', { keys: [{ uniqueIdentifier: keyUid }] });
});

after(async () => {
  await gateway.stop();
  await broker.stop();
});

for (const protocolVersion of [4, 5] as const) {
  describe(`devices over Mosquitto, MQTT ${protocolVersion === 4 ? '3.1.1' : '5'}`, () => {
    it('a device gets its key, units and a lease; a frame on another device\'s topic is dropped', async () => {
      const transport = await MqttDeviceTransport.start({ host: '127.0.0.1', port: broker.port, protocolVersion, clientId: `agent-${protocolVersion}` }, (frame, id) => service.handle(frame, id));
      const mqtt = await connectMqtt({ host: '127.0.0.1', port: broker.port, protocolVersion, clientId: `${tape.id}-${protocolVersion}` });
      try {
        const device = await MqttDevice.attach(mqtt, new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(BigInt(protocolVersion) * 1000n)));
        const got = (await device.request(deviceRequest(Operation.Get, payload.get(keyUid)))).batchItems[0]!;
        assert.equal(got.resultStatus, ResultStatus.Success);
        assert.equal(toHex(keyMaterialOf(keyBlockOf(readGet(got.payload!).object))), toHex(keyMaterialOf(keyBlockOf((await admin.get(keyUid)).object))));
        const granted = (await device.request(deviceRequest(Operation.GetUsageAllocation, payload.getUsageAllocation(keyUid, 100n)))).batchItems[0]!;
        assert.equal(granted.resultStatus, ResultStatus.Success);
        const lease = (await device.request(deviceRequest(Operation.ObtainLease, payload.obtainLease(keyUid)))).batchItems[0]!;
        assert.equal(lease.resultStatus, ResultStatus.Success);

        const dropped = service.dropped.get('FRAME_WRONG_DEVICE') ?? 0;
        const sealed = new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(BigInt(protocolVersion) * 1000n + 500n)).seal(deviceRequest(Operation.Get, payload.get(keyUid)));
        mqtt.publish('kmip-edge/sensor-7/up', Buffer.from(sealed.frame), { qos: 1 });
        const until = Date.now() + 3000;
        while ((service.dropped.get('FRAME_WRONG_DEVICE') ?? 0) === dropped && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(service.dropped.get('FRAME_WRONG_DEVICE'), dropped + 1);
      } finally {
        mqtt.end(true);
        await transport.close();
      }
    });
  });
}

it('a device resends the same frame until the agent is back, and is answered exactly once in effect', async () => {
  const mqtt = await connectMqtt({ host: '127.0.0.1', port: broker.port, clientId: `${tape.id}-resend` });
  try {
    const device = await MqttDevice.attach(mqtt, new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(50_000n)));
    const before = (await agent.ledger.totals(keyUid)).grantedToDevices;
    const pending = device.request(deviceRequest(Operation.GetUsageAllocation, payload.getUsageAllocation(keyUid, 7n)), { resendMs: 200, deadlineMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 700)); // the agent's transport is not up yet: the device resends
    const transport = await MqttDeviceTransport.start({ host: '127.0.0.1', port: broker.port, clientId: 'agent-late' }, (frame, id) => service.handle(frame, id));
    try {
      assert.equal((await pending).batchItems[0]!.resultStatus, ResultStatus.Success);
      await new Promise((resolve) => setTimeout(resolve, 500)); // any queued resends reach the agent too
      assert.equal((await agent.ledger.totals(keyUid)).grantedToDevices, before + 7n, 'granted once despite the resends');
    } finally {
      await transport.close();
    }
  } finally {
    mqtt.end(true);
  }
});

for (const protocolVersion of [4, 5] as const) {
  it(`MQTT ${protocolVersion === 4 ? '3.1.1' : '5'}: a frame published while the agent's transport was away (closed cleanly) is queued by the broker for its persistent session and answered when it is back`, async () => {
    const clientId = `agent-session-${protocolVersion}`;
    const start = () => MqttDeviceTransport.start({ host: '127.0.0.1', port: broker.port, protocolVersion, clientId, persistentSession: true }, (frame, id) => service.handle(frame, id));
    await (await start()).close();
    const mqtt = await connectMqtt({ host: '127.0.0.1', port: broker.port, protocolVersion, clientId: `${tape.id}-session-${protocolVersion}` });
    try {
      const device = await MqttDevice.attach(mqtt, new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(60_000n + BigInt(protocolVersion) * 1000n)));
      // Sent once (no resend within the test), while no agent is connected.
      const acknowledged = new Promise<void>((resolve) => {
        const onPacket = (packet: { cmd: string }) => packet.cmd === 'puback' && (mqtt.removeListener('packetreceive', onPacket), resolve());
        mqtt.on('packetreceive', onPacket);
      });
      const pending = device.request(deviceRequest(Operation.Get, payload.get(keyUid)), { resendMs: 600_000, deadlineMs: 20_000 });
      await acknowledged; // the broker has the frame; no agent is connected
      const transport = await start();
      try {
        assert.equal((await pending).batchItems[0]!.resultStatus, ResultStatus.Success);
      } finally {
        await transport.close();
      }
    } finally {
      mqtt.end(true);
    }
  });
}

it('the embedded broker (aedes) disconnects a client that announces a packet over the limit, before reading it; others are served', async () => {
  const embedded = await startEmbeddedBroker();
  const transport = await MqttDeviceTransport.start({ host: embedded.host, port: embedded.port, clientId: 'agent-embedded' }, (frame, id) => service.handle(frame, id));
  const flooder = await connectMqtt({ host: embedded.host, port: embedded.port, clientId: 'flooder' }, { reconnectPeriod: 0 });
  const mqtt = await connectMqtt({ host: embedded.host, port: embedded.port, clientId: `${tape.id}-embedded` });
  try {
    const closed = new Promise<void>((resolve) => flooder.once('close', () => resolve()));
    flooder.publish(`kmip-edge/${tape.id}/up`, Buffer.alloc(MQTT_MAX_PACKET_BYTES, 1), { qos: 1 });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('the flooder was not disconnected')), 10_000)))]);
    clearTimeout(timer);
    const device = await MqttDevice.attach(mqtt, new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(80_000n)));
    assert.equal((await device.request(deviceRequest(Operation.Get, payload.get(keyUid)))).batchItems[0]!.resultStatus, ResultStatus.Success);
  } finally {
    flooder.end(true);
    mqtt.end(true);
    await transport.close();
    await embedded.close();
  }
});
