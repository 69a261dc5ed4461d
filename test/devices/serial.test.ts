/**
 * Devices over a real serial line (a socat pty pair): SLIP + CRC-32 frames through the agent's
 * serial transport; line noise between frames is survived.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { dataDir } from '../../src/agent/data-dir.ts';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import { DeviceService } from '../../src/devices/device-service.ts';
import { DeviceRegistry, type Device } from '../../src/devices/registry.ts';
import { SerialLine, startSerialTransport } from '../../src/devices/serial-transport.ts';
import { silentLogger } from '../../src/log.ts';
import { buildRequestMessage } from '../../src/kmip/message.ts';
import { keyBlockOf, keyMaterialOf, payload, readGet } from '../../src/kmip/payloads.ts';
import { ObjectType, Operation, ResultStatus } from '../../src/kmip/tables.generated.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { MasterKey } from '../../src/store/master-key.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { startDevServer } from '../helpers/dev-server.ts';
import { startPtyPair } from '../helpers/pty-pair.ts';

let dev: Awaited<ReturnType<typeof startDevServer>>;
let pty: Awaited<ReturnType<typeof startPtyPair>>;
let client: KmipClient;
let agent: AgentCore;
let deviceStore: LevelStore;
let service: DeviceService;
let tape: Device;
let keyUid: string;

before(async () => {
  [dev, pty] = await Promise.all([startDevServer(), startPtyPair()]);
  client = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
  keyUid = await client.create(ObjectType.SymmetricKey, aesKey('serial-key'));
  await client.activate(keyUid);
  const data = mkdtempSync(join(tmpdir(), 'kmip-edge-serial-'));
  agent = await AgentCore.open({ data, client });
  deviceStore = await LevelStore.open(join(data, 'devices'));
  const registry = new DeviceRegistry(deviceStore, MasterKey.load(dataDir(data).masterKey));
  tape = await registry.add('serial-tape-1', { keys: [{ uniqueIdentifier: keyUid }] });
  service = new DeviceService(agent, registry, deviceStore, silentLogger);
});

after(async () => {
  await deviceStore.close();
  await agent.close();
  await client.close();
  await dev.stop();
  pty.stop();
});

it('a device on a pty gets its key through SLIP frames, and line noise does not derail it', async () => {
  const agentLine = await startSerialTransport(pty.agentEnd, (frame) => service.handle(frame));
  const replies: Uint8Array[] = [];
  const deviceLine = await SerialLine.open(pty.deviceEnd, (frame) => replies.push(frame));
  try {
    const device = new DeviceClient(tape.id, tape.key, tape.suite, memoryCounters());
    const expected = toHex(keyMaterialOf(keyBlockOf((await client.get(keyUid)).object)));
    for (let i = 0; i < 3; i++) {
      const { frame, counter } = device.seal(encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Get, payload: payload.get(keyUid) }])));
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
