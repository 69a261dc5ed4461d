/**
 * Relaying upstream pushes to devices (ARCHITECTURE.md §3): through the device service with the
 * agent core on LevelDB and the development server upstream; the link between agent and device
 * is a function call here (the MQTT and serial paths are in test/cli/push-e2e.test.ts). A device
 * acknowledges each push once; a replayed or tampered push frame is dropped; a lost
 * acknowledgement makes the agent send the push again under a new counter; only devices whose
 * allow-list covers the key get it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import { DeviceRequester } from '../../src/devices/device-requester.ts';
import type { Device } from '../../src/devices/registry.ts';
import { attributeItem, nameValue } from '../../src/kmip/attributes.ts';
import type { RequestMessage } from '../../src/kmip/message.ts';
import { notifyPayload, putPayload, readPush } from '../../src/kmip/push.ts';
import { Operation, State, Tag } from '../../src/kmip/tables.generated.ts';
import { byteString, dateTime, enumeration, integer, structure, textString } from '../../src/ttlv/build.ts';
import { startGateway } from '../helpers/gateway.ts';
import { until } from '../helpers/until.ts';

let gateway: Awaited<ReturnType<typeof startGateway>>;
before(async () => (gateway = await startGateway({ relay: { retryMs: 100, maxRetryMs: 200 } })));
after(() => gateway.stop());

const notify = (uid: string, name: string) => readPush(Operation.Notify, structure(Tag.RequestPayload, notifyPayload(uid, [{ name: 'Name', value: nameValue(name) }])));

/** A device on a link to the service: frames it sends go to `handle`, the agent's frames come back through `deliver`. */
function connect(device: Device, options: { loseAcknowledgements?: number } = {}) {
  const client = new DeviceClient(device.id, device.key, device.suite, memoryCounters());
  const pushes: RequestMessage[] = [];
  const agentFrames: Uint8Array[] = [];
  let toLose = options.loseAcknowledgements ?? 0;
  const requester: DeviceRequester = new DeviceRequester(client, (frame) => {
    if (toLose > 0) {
      toLose--;
      return; // the acknowledgement is lost on the way
    }
    void gateway.service.handle(frame, device.id, route).then((reply) => reply && route(reply));
  });
  const route = (frame: Uint8Array) => {
    agentFrames.push(frame);
    requester.deliver(frame);
  };
  requester.onPush = (request) => pushes.push(request);
  return { client, requester, pushes, agentFrames, route };
}

async function outbox(deviceId: string): Promise<number> {
  let n = 0;
  for await (const _ of gateway.agent.store.entries(`outbox/${deviceId}/`)) n++;
  return n;
}

describe('push relay to devices', () => {
  it('a device whose allow-list covers the key gets the Notify and acknowledges it; the outbox empties; others get nothing', async () => {
    const allowed = await gateway.registry.add('relay-a', { keys: [{ uniqueIdentifier: 'relay-key-1' }] });
    const unrelated = await gateway.registry.add('relay-b', { keys: [{ uniqueIdentifier: 'some-other-key' }] });
    const a = connect(allowed);
    const b = connect(unrelated);
    gateway.service.relay.heard(allowed.id, a.route);
    gateway.service.relay.heard(unrelated.id, b.route);
    assert.equal(await gateway.service.applyAndRelay(notify('relay-key-1', 'first-name')), 'applied');
    await until(() => a.pushes.length === 1, 'the push at the device');
    await until(async () => (await outbox(allowed.id)) === 0, 'the acknowledgement to empty the outbox');
    const item = a.pushes[0]!.batchItems[0]!;
    assert.equal(item.operation, Operation.Notify);
    assert.equal(b.pushes.length, 0);
    assert.equal(await outbox(unrelated.id), 0);
  });

  it('a replayed or tampered push frame is dropped by the device and not acknowledged again', async () => {
    const device = await gateway.registry.add('relay-c', { keys: [{ uniqueIdentifier: 'relay-key-2' }] });
    const c = connect(device);
    gateway.service.relay.heard(device.id, c.route);
    await gateway.service.applyAndRelay(notify('relay-key-2', 'n1'));
    await until(() => c.pushes.length === 1, 'the push');
    const pushFrame = c.agentFrames.find((f) => (f[2]! & 1) === 0)!;
    c.requester.deliver(pushFrame); // replayed
    const tampered = Uint8Array.from(pushFrame);
    tampered[tampered.length - 1]! ^= 1;
    c.requester.deliver(tampered);
    assert.equal(c.pushes.length, 1);
    assert.equal(c.requester.droppedPushes, 2);
  });

  it('a lost acknowledgement: the agent sends the push again under a new counter until acknowledged, in order with the next push', async () => {
    const device = await gateway.registry.add('relay-d', { keys: [{ name: 'relay-name' }] });
    const d = connect(device, { loseAcknowledgements: 2 });
    gateway.service.relay.heard(device.id, d.route);
    const material = new Uint8Array(32).fill(7);
    const object = structure(Tag.SymmetricKey, [structure(Tag.KeyBlock, [enumeration(Tag.KeyFormatType, 1), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, material)]), enumeration(Tag.CryptographicAlgorithm, 3), integer(Tag.CryptographicLength, 256)])]);
    const put = readPush(Operation.Put, structure(Tag.RequestPayload, putPayload('relay-key-3', object, [{ name: 'Name', value: nameValue('relay-name') }, { name: 'State', value: enumeration(Tag.AttributeValue, State.Active) }])));
    await gateway.service.applyAndRelay(put);
    await gateway.service.applyAndRelay(notify('relay-key-3', 'relay-name'));
    await until(async () => (await outbox(device.id)) === 0, 'both pushes acknowledged');
    const operations = d.pushes.map((p) => p.batchItems[0]!.operation);
    assert.deepEqual(operations, [Operation.Put, Operation.Put, Operation.Put, Operation.Notify], 'the Put three times (two acknowledgements lost), then the Notify');
    const counters = d.agentFrames.filter((f) => (f[2]! & 1) === 0).map((f) => Buffer.from(f).readBigUInt64BE(4 + f[3]!));
    assert.equal(new Set(counters).size, counters.length, 'every attempt has its own counter');
    assert.ok(gateway.service.relay.counts.acknowledged >= 2);
  });

  it('a push too large for a device frame is not relayed (counted), and the rest are', async () => {
    const device = await gateway.registry.add('relay-e', { keys: [{ uniqueIdentifier: 'relay-key-4' }] });
    const before = gateway.service.relay.counts.undeliverable;
    const big = readPush(Operation.Notify, structure(Tag.RequestPayload, [textString(Tag.UniqueIdentifier, 'relay-key-4'), attributeItem({ name: 'x-Big', value: textString(Tag.AttributeValue, 'x'.repeat(5000)) })]));
    await gateway.service.applyAndRelay(big);
    assert.equal(gateway.service.relay.counts.undeliverable, before + 1);
    assert.equal(await outbox(device.id), 0);
  });
});

describe('push relay: what is not relayed', () => {
  it('a Notify only about x-Nonce (a nonce-MAC exchange) is not relayed; one only with Last Change Date is', async () => {
    const device = await gateway.registry.add('relay-f', { keys: [{ uniqueIdentifier: 'relay-key-5' }] });
    const lastChange = { name: 'Last Change Date', value: dateTime(Tag.AttributeValue, 1_900_000_000n) };
    await gateway.service.applyAndRelay(readPush(Operation.Notify, structure(Tag.RequestPayload, notifyPayload('relay-key-5', [{ name: 'x-Nonce', value: byteString(Tag.AttributeValue, new Uint8Array(16)) }, lastChange]))));
    assert.equal(await outbox(device.id), 0);
    await gateway.service.applyAndRelay(readPush(Operation.Notify, structure(Tag.RequestPayload, notifyPayload('relay-key-5', [lastChange]))));
    assert.equal(await outbox(device.id), 1);
  });
});
