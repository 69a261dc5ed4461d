/**
 * Devices over a real Mosquitto broker (MQTT 3.1.1 and 5): a simulated device gets a key, usage
 * allocations and a lease through the agent, with the development server as the upstream; a
 * frame published on another device's topic is dropped; a device keeps resending while the
 * agent's transport is away and is answered once it returns.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { dataDir } from '../../src/agent/data-dir.ts';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import { DeviceService } from '../../src/devices/device-service.ts';
import { MqttDevice } from '../../src/devices/mqtt-device.ts';
import { connectMqtt, MqttDeviceTransport } from '../../src/devices/mqtt-transport.ts';
import { DeviceRegistry, type Device } from '../../src/devices/registry.ts';
import { silentLogger } from '../../src/log.ts';
import { buildRequestMessage } from '../../src/kmip/message.ts';
import { keyBlockOf, keyMaterialOf, payload, readGet } from '../../src/kmip/payloads.ts';
import { ObjectType, Operation, ResultStatus, Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { MasterKey } from '../../src/store/master-key.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { startDevServer } from '../helpers/dev-server.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';

let dev: Awaited<ReturnType<typeof startDevServer>>;
let broker: Awaited<ReturnType<typeof startMosquitto>>;
let admin: KmipClient;
let client: KmipClient;
let agent: AgentCore;
let deviceStore: LevelStore;
let service: DeviceService;
let tape: Device;
let keyUid: string;

before(async () => {
  [dev, broker] = await Promise.all([startDevServer({ leaseSeconds: 600 }), startMosquitto()]);
  admin = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
  const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 10_000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]);
  keyUid = await admin.create(ObjectType.SymmetricKey, aesKey('mqtt-tape-key', undefined, [{ name: 'Usage Limits', value: limits }]));
  await admin.activate(keyUid);
  const data = mkdtempSync(join(tmpdir(), 'kmip-edge-mqtt-'));
  client = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
  agent = await AgentCore.open({ data, client });
  deviceStore = await LevelStore.open(join(data, 'devices'));
  const registry = new DeviceRegistry(deviceStore, MasterKey.load(dataDir(data).masterKey));
  tape = await registry.add('tape-drive-9', { keys: [{ uniqueIdentifier: keyUid }] });
  service = new DeviceService(agent, registry, deviceStore, silentLogger);
});

after(async () => {
  await deviceStore.close();
  await agent.close();
  await client.close();
  await admin.close();
  await dev.stop();
  await broker.stop();
});

const request = (operation: number, items: ReturnType<typeof payload.get>) => encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation, payload: items }]));

for (const protocolVersion of [4, 5] as const) {
  describe(`devices over Mosquitto, MQTT ${protocolVersion === 4 ? '3.1.1' : '5'}`, () => {
    it('a device gets its key, units and a lease; a frame on another device\'s topic is dropped', async () => {
      const transport = await MqttDeviceTransport.start({ host: '127.0.0.1', port: broker.port, protocolVersion, clientId: `agent-${protocolVersion}` }, (frame, id) => service.handle(frame, id));
      const mqtt = await connectMqtt({ host: '127.0.0.1', port: broker.port, protocolVersion, clientId: `${tape.id}-${protocolVersion}` });
      try {
        const device = await MqttDevice.attach(mqtt, new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(BigInt(protocolVersion) * 1000n)));
        const got = (await device.request(request(Operation.Get, payload.get(keyUid)))).batchItems[0]!;
        assert.equal(got.resultStatus, ResultStatus.Success);
        assert.equal(toHex(keyMaterialOf(keyBlockOf(readGet(got.payload!).object))), toHex(keyMaterialOf(keyBlockOf((await admin.get(keyUid)).object))));
        const granted = (await device.request(request(Operation.GetUsageAllocation, payload.getUsageAllocation(keyUid, 100n)))).batchItems[0]!;
        assert.equal(granted.resultStatus, ResultStatus.Success);
        const lease = (await device.request(request(Operation.ObtainLease, payload.obtainLease(keyUid)))).batchItems[0]!;
        assert.equal(lease.resultStatus, ResultStatus.Success);

        const dropped = service.dropped.get('FRAME_WRONG_DEVICE') ?? 0;
        const sealed = new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(BigInt(protocolVersion) * 1000n + 500n)).seal(request(Operation.Get, payload.get(keyUid)));
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
    const pending = device.request(request(Operation.GetUsageAllocation, payload.getUsageAllocation(keyUid, 7n)), { resendMs: 200, deadlineMs: 10_000 });
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
