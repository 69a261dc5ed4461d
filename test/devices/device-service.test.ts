/**
 * The device service: devices get keys, allocations, leases and attributes through the agent
 * core (development server upstream, LevelDB store); every forged, replayed, misdirected or
 * disallowed frame is refused and changes nothing (counter, ledger, cache).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AgentCore } from '../../src/agent/agent-core.ts';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import { DeviceService } from '../../src/devices/device-service.ts';
import { silentLogger } from '../../src/log.ts';
import { Suite } from '../../src/devices/frame.ts';
import type { Device } from '../../src/devices/registry.ts';
import type { ResponseBatchItem } from '../../src/kmip/message.ts';
import { keyBlockOf, keyMaterialOf, payload, readGet } from '../../src/kmip/payloads.ts';
import { ObjectType, Operation, ResultReason, ResultStatus, Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { optionalValue } from '../../src/kmip/tree.ts';
import type { LevelStore } from '../../src/store/kv-store.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { ItemType } from '../../src/ttlv/item.ts';
import type { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { deviceRequest, startGateway } from '../helpers/gateway.ts';

let gateway: Awaited<ReturnType<typeof startGateway>>;
let admin: KmipClient;
let agent: AgentCore;
let service: DeviceService;
let deviceStore: LevelStore;
let tape: Device;
let other: Device;
let allowedKey: string;
let forbiddenKey: string;

before(async () => {
  gateway = await startGateway({ ledger: { minChunk: 50n } });
  ({ admin, agent, service, deviceStore } = gateway);
  const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 1000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Object)]);
  allowedKey = await admin.create(ObjectType.SymmetricKey, aesKey('tape-key', undefined, [{ name: 'Usage Limits', value: limits }]));
  forbiddenKey = await admin.create(ObjectType.SymmetricKey, aesKey('other-key'));
  await admin.activate(allowedKey);
  await admin.activate(forbiddenKey);
  tape = await gateway.registry.add('tape-drive-7', { keys: [{ name: 'tape-key' }] });
  other = await gateway.registry.add('sensor-1', { suite: Suite.CHACHA20_POLY1305, keys: [{ uniqueIdentifier: forbiddenKey }], operations: ['Get'] });
});

after(() => gateway.stop());

const request = (operation: number, items = payload.get(allowedKey)) => deviceRequest(operation, items);

async function ask(device: DeviceClient, operation: number, items?: ReturnType<typeof payload.get>): Promise<ResponseBatchItem> {
  const { frame, counter } = device.seal(request(operation, items));
  const reply = await service.handle(frame, device.id);
  assert.ok(reply, 'the service answered');
  return device.open(reply, counter).batchItems[0]!;
}

describe('device service: what devices get', () => {
  it('Get returns the key (the same bytes the upstream holds); Get Attributes, Lease, Check, Query', async () => {
    const device = new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters());
    const got = await ask(device, Operation.Get);
    assert.equal(got.resultStatus, ResultStatus.Success);
    const upstream = keyMaterialOf(keyBlockOf((await admin.get(allowedKey)).object));
    assert.equal(toHex(keyMaterialOf(keyBlockOf(readGet(got.payload!).object))), toHex(upstream));
    const attributes = await ask(device, Operation.GetAttributes, payload.getAttributes(allowedKey));
    assert.equal(attributes.resultStatus, ResultStatus.Success);
    const lease = await ask(device, Operation.ObtainLease, payload.obtainLease(allowedKey));
    const seconds = optionalValue(lease.payload!, Tag.LeaseTime, ItemType.Interval)!;
    assert.ok(seconds > 500 && seconds <= 600, `lease ${seconds}`);
    assert.equal((await ask(device, Operation.Check, payload.check(allowedKey, { usageLimitsCount: 1n }))).resultStatus, ResultStatus.Success);
    assert.equal((await ask(device, Operation.Query, payload.query([1]))).resultStatus, ResultStatus.Success);
  });

  it('Get Usage Allocation grants units through the ledger, idempotently for a resent frame', async () => {
    const device = new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(1000n));
    const before = (await agent.ledger.totals(allowedKey)).grantedToDevices;
    const { frame, counter } = device.seal(request(Operation.GetUsageAllocation, payload.getUsageAllocation(allowedKey, 12n)));
    const first = await service.handle(frame, tape.id);
    const again = await service.handle(frame, tape.id); // the device did not hear the reply and resends
    assert.ok(first && again);
    assert.equal(toHex(again), toHex(first), 'the stored reply is sent again');
    assert.equal(device.open(first, counter).batchItems[0]!.resultStatus, ResultStatus.Success);
    assert.equal((await agent.ledger.totals(allowedKey)).grantedToDevices, before + 12n, 'counted once');
    // After an agent restart (a new service, nothing in memory) the resend still gets the reply.
    const restarted = new DeviceService(agent, gateway.registry, deviceStore, silentLogger);
    assert.equal(toHex((await restarted.handle(frame, tape.id))!), toHex(first));
    assert.equal((await agent.ledger.totals(allowedKey)).grantedToDevices, before + 12n, 'still counted once');
  });

  it('a key or operation outside the allow-list is refused as if it did not exist / not allowed', async () => {
    const device = new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(2000n));
    const item = await ask(device, Operation.Get, payload.get(forbiddenKey));
    assert.equal(item.resultReason, ResultReason.ItemNotFound);
    const sensor = new DeviceClient(other.id, other.key, other.suite, memoryCounters());
    assert.equal((await ask(sensor, Operation.ObtainLease, payload.obtainLease(forbiddenKey))).resultReason, ResultReason.PermissionDenied);
    assert.equal((await ask(sensor, Operation.Get, payload.get(forbiddenKey))).resultStatus, ResultStatus.Success);
  });
});

describe('device service: several requests in flight (PROTOCOL.md §3)', () => {
  it('frames arriving out of order are each served once; one lost and resent after later ones is served; a resend gets the same reply', async () => {
    const device = new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(2500n));
    const [a, b, c] = [1, 2, 3].map(() => device.seal(request(Operation.GetUsageAllocation, payload.getUsageAllocation(allowedKey, 1n))));
    const granted = (await agent.ledger.totals(allowedKey)).grantedToDevices;
    const replyC = await service.handle(c!.frame, tape.id);
    const replyA = await service.handle(a!.frame, tape.id); // arrived late
    assert.equal(device.open(replyC!, c!.counter).batchItems[0]!.resultStatus, ResultStatus.Success);
    assert.equal(device.open(replyA!, a!.counter).batchItems[0]!.resultStatus, ResultStatus.Success);
    const replyB = await service.handle(b!.frame, tape.id); // lost first, resent now
    assert.equal(device.open(replyB!, b!.counter).batchItems[0]!.resultStatus, ResultStatus.Success);
    assert.deepEqual(await service.handle(a!.frame, tape.id), replyA, 'a resend gets the kept reply');
    assert.equal((await agent.ledger.totals(allowedKey)).grantedToDevices, granted + 3n, 'three grants, not four');
  });
});

describe('device service: a resent read (PROTOCOL.md §3.1)', () => {
  it('is answered again — a fresh reply, the cache and ledger untouched — while inside the replay window of 64; below it, it is dropped', async () => {
    const device = new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(2700n));
    const first = device.seal(request(Operation.Get));
    const firstReply = await service.handle(first.frame, tape.id);
    assert.ok(firstReply);
    const ledger = await agent.ledger.totals(allowedKey);
    const again = await service.handle(first.frame, tape.id);
    assert.ok(again, 'the resend is answered');
    assert.notDeepEqual(again, firstReply, 'not a kept copy: a new reply under a new down counter');
    assert.equal(device.open(again, first.counter).batchItems[0]!.resultStatus, ResultStatus.Success);
    assert.deepEqual(await agent.ledger.totals(allowedKey), ledger);
    // 63 reads later the first is still inside the window; one more and it is not.
    for (let i = 0; i < 63; i++) await service.handle(device.seal(request(Operation.Get)).frame, tape.id);
    assert.ok(await service.handle(first.frame, tape.id), 'a resend 63 below the highest is answered');
    await service.handle(device.seal(request(Operation.Get)).frame, tape.id);
    const dropped = service.dropped.get('FRAME_REPLAYED') ?? 0;
    assert.equal(await service.handle(first.frame, tape.id), undefined, '64 below the highest it is a replay');
    assert.equal(service.dropped.get('FRAME_REPLAYED'), dropped + 1);
  });
});

describe('device service: a device removed and added again', () => {
  it('starts afresh: its counters and kept replies went with it (a new key, so no nonce is reused)', async () => {
    const first = await gateway.registry.add('re-added', { keys: [{ name: 'tape-key' }] });
    const old = new DeviceClient(first.id, first.key, first.suite, memoryCounters(5000n));
    assert.equal((await ask(old, Operation.GetUsageAllocation, payload.getUsageAllocation(allowedKey, 1n))).resultStatus, ResultStatus.Success);
    assert.equal(await gateway.registry.remove('re-added'), true);
    service.forget('re-added');
    const kept: unknown[] = [];
    for await (const entry of deviceStore.entries('device/reply/re-added/')) kept.push(entry);
    assert.deepEqual(kept, [], 'no kept replies left');
    const again = await gateway.registry.add('re-added', { keys: [{ name: 'tape-key' }] });
    const fresh = new DeviceClient(again.id, again.key, again.suite, memoryCounters()); // counters from the start
    assert.equal((await ask(fresh, Operation.Get)).resultStatus, ResultStatus.Success);
  });
});

describe('device service: refused frames change nothing', () => {
  /** Sends a frame that must be dropped and checks counters, ledger and replies did not move. */
  async function refused(frame: Uint8Array, topicDeviceId: string | undefined, code: string): Promise<void> {
    await service.flush(); // counters of earlier reads, written behind
    const before = { dropped: service.dropped.get(code) ?? 0, ledger: await agent.ledger.totals(allowedKey), counter: await deviceStore.get(`device/counter/${tape.id}/up`) };
    assert.equal(await service.handle(frame, topicDeviceId), undefined);
    assert.equal(service.dropped.get(code), before.dropped + 1, `dropped as ${code}`);
    assert.deepEqual(await agent.ledger.totals(allowedKey), before.ledger);
    assert.deepEqual(await deviceStore.get(`device/counter/${tape.id}/up`), before.counter);
  }

  it('a replayed frame, an old counter, the wrong topic, another device key, the wrong suite', async () => {
    const device = new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(3000n));
    const grant = request(Operation.GetUsageAllocation, payload.getUsageAllocation(allowedKey, 3n));
    const first = device.seal(grant);
    const firstReply = await service.handle(first.frame, tape.id);
    assert.ok(firstReply, 'the first request was served');
    const second = device.seal(grant);
    await service.handle(second.frame, tape.id);
    // A resend of an answered request, also not the latest: its kept reply again, nothing acted on.
    const ledger = await agent.ledger.totals(allowedKey);
    assert.deepEqual(await service.handle(first.frame, tape.id), firstReply);
    assert.deepEqual(await agent.ledger.totals(allowedKey), ledger);
    // A counter never used but older than the window below the highest (3002 - 64): dropped.
    await refused(new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(2937n)).seal(grant).frame, tape.id, 'FRAME_REPLAYED');
    // Once 64 more requests went by, the first frame is a plain replay: dropped, its reply no longer kept.
    for (let i = 0; i < 64; i++) await service.handle(device.seal(grant).frame, tape.id);
    await refused(first.frame, tape.id, 'FRAME_REPLAYED');
    await refused(device.seal(grant).frame, other.id, 'FRAME_WRONG_DEVICE');
    const forged = new DeviceClient(tape.id, other.key, tape.suite, memoryCounters(9000n)).seal(grant).frame;
    await refused(forged, tape.id, 'FRAME_AUTH_FAILED');
    const wrongSuite = new DeviceClient(tape.id, tape.key, Suite.CHACHA20_POLY1305, memoryCounters(9100n)).seal(grant).frame;
    await refused(wrongSuite, tape.id, 'FRAME_SUITE');
  });

  it('every single-bit flip of a valid frame, and every truncation', async () => {
    const device = new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(10_000n));
    const { frame } = device.seal(request(Operation.GetUsageAllocation, payload.getUsageAllocation(allowedKey, 1n)));
    await service.flush();
    const before = { ledger: await agent.ledger.totals(allowedKey), counter: await deviceStore.get(`device/counter/${tape.id}/up`) };
    for (let bit = 0; bit < frame.length * 8; bit++) {
      const flipped = Uint8Array.from(frame);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      assert.equal(await service.handle(flipped, tape.id), undefined, `bit ${bit}`);
    }
    for (let length = 0; length < frame.length; length++) assert.equal(await service.handle(frame.subarray(0, length), tape.id), undefined);
    assert.equal(await service.handle(new Uint8Array(5000), tape.id), undefined, 'oversize');
    assert.deepEqual(await agent.ledger.totals(allowedKey), before.ledger);
    assert.deepEqual(await deviceStore.get(`device/counter/${tape.id}/up`), before.counter);
    assert.ok(await service.handle(frame, tape.id), 'the untouched frame is still accepted afterwards');
  });
});

describe('device service: per-device limits', () => {
  it('frame size: a frame of exactly the device limit is served; with the limit one byte lower it is dropped', async () => {
    const probe = new DeviceClient('probe', new Uint8Array(32), Suite.AES_256_GCM, memoryCounters()).seal(request(Operation.Get, payload.get(allowedKey))).frame.length;
    const exact = await gateway.registry.add('limit-exact', { keys: [{ name: 'tape-key' }], limits: { maxFrameBytes: probe - 'probe'.length + 'limit-exact'.length } });
    const under = await gateway.registry.add('limit-under', { keys: [{ name: 'tape-key' }], limits: { maxFrameBytes: probe - 'probe'.length + 'limit-under'.length - 1 } });
    const ok = await ask(new DeviceClient(exact.id, exact.key, exact.suite, memoryCounters()), Operation.Get);
    assert.equal(ok.resultStatus, ResultStatus.Success);
    const dropped = service.dropped.get('FRAME_TOO_LARGE') ?? 0;
    const { frame } = new DeviceClient(under.id, under.key, under.suite, memoryCounters()).seal(request(Operation.Get, payload.get(allowedKey)));
    assert.equal(frame.length, under.limits.maxFrameBytes + 1);
    assert.equal(await service.handle(frame, under.id), undefined);
    assert.equal(service.dropped.get('FRAME_TOO_LARGE'), dropped + 1);
  });

  it('rate: bursts up to twice the rate are served, then requests are refused (answered, not acted on)', async () => {
    const slow = await gateway.registry.add('slow-device', { keys: [{ name: 'tape-key' }], limits: { requestsPerSecond: 2 } });
    const device = new DeviceClient(slow.id, slow.key, slow.suite, memoryCounters());
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await ask(device, Operation.Get));
    assert.deepEqual(results.map((r) => r.resultStatus), [0, 0, 0, 0, ResultStatus.OperationFailed]);
    assert.equal(results[4]!.resultMessage, 'DEVICE_RATE_LIMITED');
    await new Promise((resolve) => setTimeout(resolve, 600)); // a token comes back every 500 ms
    assert.equal((await ask(device, Operation.Get)).resultStatus, ResultStatus.Success);
  });
});

describe('device service: a grant is delivered or never debited (issue #13 finding 3, PROTOCOL.md §3.1)', () => {
  it('a grant whose reply was lost, then 16 (and up to 63) answered grants, then resent unchanged: the kept reply, not FRAME_REPLAYED — also after a restart', async () => {
    const device = new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters(20000n));
    const before = (await agent.ledger.totals(allowedKey)).grantedToDevices;
    const lost = device.seal(request(Operation.GetUsageAllocation, payload.getUsageAllocation(allowedKey, 2n)));
    const firstReply = await service.handle(lost.frame, tape.id); // the reply is lost on the way
    assert.ok(firstReply);
    let delivered = 0n;
    for (let i = 0; i < 16; i++) {
      const { frame, counter } = device.seal(request(Operation.GetUsageAllocation, payload.getUsageAllocation(allowedKey, 2n)));
      assert.equal(device.open((await service.handle(frame, tape.id))!, counter).batchItems[0]!.resultStatus, ResultStatus.Success);
      delivered += 2n;
    }
    const resent = await service.handle(lost.frame, tape.id);
    assert.ok(resent, 'the resend 16 below the highest is answered');
    assert.equal(toHex(resent), toHex(firstReply), 'with the kept reply');
    assert.equal(device.open(resent, lost.counter).batchItems[0]!.resultStatus, ResultStatus.Success);
    delivered += 2n;
    assert.equal((await agent.ledger.totals(allowedKey)).grantedToDevices - before, delivered, 'the ledger counts what the device received: 34 = 34');
    // Up to 63 grants later, across a restart (nothing in memory), the reply is still there.
    for (let i = 16; i < 63; i++) await service.handle(device.seal(request(Operation.GetUsageAllocation, payload.getUsageAllocation(allowedKey, 1n))).frame, tape.id);
    const restarted = new DeviceService(agent, gateway.registry, deviceStore, silentLogger);
    assert.equal(toHex((await restarted.handle(lost.frame, tape.id))!), toHex(firstReply), 'kept across a restart while inside the window');
    // Once the window has moved past it, the reply is deleted with the next grant: nothing is kept forever.
    await restarted.handle(device.seal(request(Operation.GetUsageAllocation, payload.getUsageAllocation(allowedKey, 1n))).frame, tape.id);
    let kept = 0;
    for await (const _ of deviceStore.entries(`device/reply/${tape.id}/`)) kept++;
    assert.ok(kept <= 64, `${kept} replies kept`);
    assert.equal(await restarted.handle(lost.frame, tape.id), undefined, 'below the window: a replay');
  });
});
