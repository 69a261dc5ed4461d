/**
 * Issue #12 §5: after `activate`, a device Get answered KEY_LEASE_EXPIRED until some device sent
 * Obtain Lease. The key was cached while Pre-Active: the server refused it a lease then, and the
 * cache kept "no lease" after the Notify of its activation. An Active key whose lease the agent
 * can obtain is served: the refusal is checked with the server first (KeyCache.decide). Real
 * parts: the development server upstream over mutual TLS, LevelDB, the device service.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import { notifyPayload, readPush } from '../../src/kmip/push.ts';
import { payload } from '../../src/kmip/payloads.ts';
import { ObjectType, Operation, ResultStatus, State, Tag } from '../../src/kmip/tables.generated.ts';
import { enumeration, structure } from '../../src/ttlv/build.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { deviceRequest, startGateway } from '../helpers/gateway.ts';

let gateway: Awaited<ReturnType<typeof startGateway>>;
before(async () => (gateway = await startGateway({ leaseSeconds: 600 })));
after(() => gateway.stop());

async function get(client: DeviceClient, uid: string, operation: number = Operation.Get) {
  const { frame, counter } = client.seal(deviceRequest(operation, operation === Operation.Check ? payload.check(uid) : payload.get(uid)));
  const reply = await gateway.service.handle(frame, client.id);
  assert.ok(reply);
  return client.open(reply, counter).batchItems[0]!;
}

describe('a key cached while Pre-Active, then activated', () => {
  it('is served at once after the Notify of its activation — Get and Check — not KEY_LEASE_EXPIRED', async () => {
    const uid = await gateway.admin.create(ObjectType.SymmetricKey, aesKey('later-active'));
    const device = await gateway.registry.add('lease-dev', { keys: [{ uniqueIdentifier: uid }] });
    const client = new DeviceClient(device.id, device.key, device.suite, memoryCounters());
    const early = await get(client, uid);
    assert.equal(early.resultStatus, ResultStatus.OperationFailed);
    assert.equal(early.resultMessage, 'KEY_NOT_ACTIVE', 'Pre-Active: refused, and cached without a lease');

    await gateway.admin.activate(uid);
    // The server's Notify of the new state, as the push listener applies it.
    await gateway.service.applyAndRelay(readPush(Operation.Notify, structure(Tag.RequestPayload, notifyPayload(uid, [{ name: 'State', value: enumeration(Tag.AttributeValue, State.Active) }]))));
    const served = await get(client, uid);
    assert.equal(served.resultStatus, ResultStatus.Success, `${served.resultMessage}`);
    assert.equal((await get(client, uid, Operation.Check)).resultStatus, ResultStatus.Success);
    const meta = (await gateway.agent.listKeys()).find((k) => k.uniqueIdentifier === uid)!;
    assert.ok(meta.leaseExpiresAt !== undefined && meta.leaseExpiresAt > BigInt(Math.floor(Date.now() / 1000)), 'a lease was obtained');
  });
});
