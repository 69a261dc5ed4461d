/**
 * Devices over a real serial line (a socat pty pair): SLIP + CRC-32 frames through the agent's
 * serial transport; line noise between frames is survived.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import type { Device } from '../../src/devices/registry.ts';
import { SerialLine, startSerialTransport } from '../../src/devices/serial-transport.ts';
import { keyBlockOf, keyMaterialOf, payload, readGet } from '../../src/kmip/payloads.ts';
import { ObjectType, Operation, ResultStatus } from '../../src/kmip/tables.generated.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { deviceRequest, startGateway } from '../helpers/gateway.ts';
import { startPtyPair } from '../helpers/pty-pair.ts';

let gateway: Awaited<ReturnType<typeof startGateway>>;
let pty: Awaited<ReturnType<typeof startPtyPair>>;
let tape: Device;
let keyUid: string;

before(async () => {
  [gateway, pty] = await Promise.all([startGateway(), startPtyPair()]);
  keyUid = await gateway.admin.create(ObjectType.SymmetricKey, aesKey('serial-key'));
  await gateway.admin.activate(keyUid);
  tape = await gateway.registry.add('serial-tape-1', { keys: [{ uniqueIdentifier: keyUid }] });
});

after(async () => {
  await gateway.stop();
  pty.stop();
});

it('a device on a pty gets its key through SLIP frames, and line noise does not derail it', async () => {
  const agentLine = await startSerialTransport(pty.agentEnd, (frame) => gateway.service.handle(frame));
  const replies: Uint8Array[] = [];
  const deviceLine = await SerialLine.open(pty.deviceEnd, (frame) => replies.push(frame));
  try {
    const device = new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters());
    const expected = toHex(keyMaterialOf(keyBlockOf((await gateway.admin.get(keyUid)).object)));
    for (let i = 0; i < 3; i++) {
      const { frame, counter } = device.seal(deviceRequest(Operation.Get, payload.get(keyUid)));
      deviceLine.sendRaw(Uint8Array.of(0x6e, 0x6f, 0xc0, 0xdb, 0xdd, 0x69, 0x73, 0x65)); // noise with stray END/ESC bytes
      deviceLine.send(frame);
      const until = Date.now() + 5000;
      while (replies.length <= i && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
      const item = device.open(replies[i]!, counter).batchItems[0]!;
      assert.equal(item.resultStatus, ResultStatus.Success);
      assert.equal(toHex(keyMaterialOf(keyBlockOf(readGet(item.payload!).object))), expected);
    }
    assert.ok(agentLine.decoder.stats.frames >= 3);
  } finally {
    await deviceLine.close();
    await agentLine.close();
  }
});
