/**
 * End-to-end nonce-MAC (ARCHITECTURE.md §6 (b)): a device sets its own x-Nonce and gets the key
 * MAC-wrapped through the agent (device service, agent core, development server upstream); the
 * agent checks the allow-lists and forwards, returning the server's items untouched; the device
 * verifies with the code `device-sim get-verified` runs (src/devices/verified-get.ts). With a man
 * in the middle on the upstream side, a tampered MAC, a tampered key byte, a replayed earlier
 * response and another client's nonce are each rejected at the device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import { DeviceRequester } from '../../src/devices/device-requester.ts';
import type { Device } from '../../src/devices/registry.ts';
import { verifiedGet } from '../../src/devices/verified-get.ts';
import { keyBlockOf, keyMaterialOf } from '../../src/kmip/payloads.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Tag } from '../../src/kmip/tables.generated.ts';
import { enumeration, integer } from '../../src/ttlv/build.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import type { TtlvItem } from '../../src/ttlv/item.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { startGateway } from '../helpers/gateway.ts';
import { flipByte, getPayloadOf, replayGetPayload, TamperingTransport } from '../helpers/tampering-transport.ts';

let gateway: Awaited<ReturnType<typeof startGateway>>;
let mitm: TamperingTransport;
let macUid: string;
let macKey: Uint8Array;
let keyUid: string;
let keyMaterial: string;
let device: Device;

before(async () => {
  gateway = await startGateway({ wrapTransport: (inner) => (mitm = new TamperingTransport(inner)) });
  macUid = await gateway.admin.create(ObjectType.SymmetricKey, [
    { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, CryptographicAlgorithm.HMAC_SHA256) },
    { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
    { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.MACGenerate | CryptographicUsageMask.MACVerify) },
  ]);
  macKey = keyMaterialOf(keyBlockOf((await gateway.admin.get(macUid)).object));
  keyUid = await gateway.admin.create(ObjectType.SymmetricKey, aesKey('e2e-nonce-key'));
  await gateway.admin.activate(keyUid);
  keyMaterial = toHex(keyMaterialOf(keyBlockOf((await gateway.admin.get(keyUid)).object)));
  device = await gateway.registry.add('verifier', { keys: [{ uniqueIdentifier: keyUid }, { uniqueIdentifier: macUid }] });
});
after(() => gateway.stop());

/** One requester per device: its counters continue from request to request, as on a real device. */
const requesters = new Map<string, DeviceRequester>();
function requesterFor(d: Device): DeviceRequester {
  const known = requesters.get(d.id);
  if (known) return known;
  const requester: DeviceRequester = new DeviceRequester(new DeviceClient(d.id, d.key, d.suite, memoryCounters()), (frame) => {
    void gateway.service.handle(frame, d.id).then((reply) => reply && requester.deliver(reply));
  });
  requesters.set(d.id, requester);
  return requester;
}

function clearTampering(): void {
  mitm.onRequest = undefined;
  mitm.onResponse = undefined;
}

describe('nonce-MAC end to end, verified at the device', () => {
  it('the honest path: the device verifies the key it gets — the HMAC over the Key Value proves the agent left it untouched', async () => {
    clearTampering();
    const result = await verifiedGet(requesterFor(device), keyUid, macUid, macKey);
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(toHex(result.material), keyMaterial);
    // And again: the second time the key already carries a nonce (Modify).
    assert.ok((await verifiedGet(requesterFor(device), keyUid, macUid, macKey)).ok);
  });

  it('outside the allow-lists: a MAC key the device may not use, or a device without Modify/Add Attribute, is refused', async () => {
    clearTampering();
    const noMac = await gateway.registry.add('verifier-no-mac', { keys: [{ uniqueIdentifier: keyUid }] });
    const refused = await verifiedGet(requesterFor(noMac), keyUid, macUid, macKey);
    assert.deepEqual([refused.ok, !refused.ok && refused.error], [false, 'ItemNotFound']);
    const getOnly = await gateway.registry.add('verifier-get-only', { keys: [{ uniqueIdentifier: keyUid }, { uniqueIdentifier: macUid }], operations: ['Get'] });
    const denied = await verifiedGet(requesterFor(getOnly), keyUid, macUid, macKey);
    assert.deepEqual([denied.ok, !denied.ok && denied.error], [false, 'PermissionDenied']);
  });

  for (const [what, tag] of [['a tampered MAC', Tag.MACSignature], ['a tampered key byte', Tag.KeyMaterial]] as const) {
    it(`${what} is rejected at the device (KMIP_MAC_INVALID)`, async () => {
      clearTampering();
      mitm.onResponse = (message) => (getPayloadOf(message) ? flipByte(tag)(message) : message);
      const result = await verifiedGet(requesterFor(device), keyUid, macUid, macKey);
      assert.deepEqual([result.ok, !result.ok && result.error], [false, 'KMIP_MAC_INVALID']);
    });
  }

  it('a replayed earlier response is rejected at the device (KMIP_NONCE_STALE), though its MAC verifies', async () => {
    clearTampering();
    let recorded: TtlvItem | undefined;
    mitm.onResponse = (message) => ((recorded ??= getPayloadOf(message) && structuredClone(getPayloadOf(message))), message);
    assert.ok((await verifiedGet(requesterFor(device), keyUid, macUid, macKey)).ok);
    mitm.onResponse = (message) => (getPayloadOf(message) ? replayGetPayload(recorded!)(message) : message);
    const result = await verifiedGet(requesterFor(device), keyUid, macUid, macKey);
    assert.deepEqual([result.ok, !result.ok && result.error], [false, 'KMIP_NONCE_STALE']);
  });

  it('a nonce set by another client is rejected at the device (KMIP_NONCE_STALE)', async () => {
    clearTampering();
    mitm.onRequest = flipByte(Tag.AttributeValue); // the key ends up with a nonce that is not the device's
    const result = await verifiedGet(requesterFor(device), keyUid, macUid, macKey);
    assert.deepEqual([result.ok, !result.ok && result.error], [false, 'KMIP_NONCE_STALE']);
    clearTampering();
  });
});
