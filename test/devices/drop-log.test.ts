/**
 * Issue #13 finding 8 (log part) and finding 1 (no frame ends the process), through the device
 * service on the real gateway parts (development server, LevelDB): a flood of 5,000 frames for
 * unknown devices writes one log line, then one summary with the count, not 5,000 lines; every
 * drop is counted and heard by the metrics hook. A failure inside the service (the registry's
 * store failing) is logged and counted, and handle() resolves — it never rejects.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import { DeviceService } from '../../src/devices/device-service.ts';
import { Suite } from '../../src/devices/frame.ts';
import type { DeviceRegistry } from '../../src/devices/registry.ts';
import { payload } from '../../src/kmip/payloads.ts';
import { Operation } from '../../src/kmip/tables.generated.ts';
import { createLogger } from '../../src/log.ts';
import { deviceRequest, startGateway } from '../helpers/gateway.ts';

let gateway: Awaited<ReturnType<typeof startGateway>>;
before(async () => (gateway = await startGateway()));
after(() => gateway.stop());

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({ write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  } });
  return { lines, log: createLogger({ level: 'info' }, stream) };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('dropped frames: counted, logged at most once per reason and interval', () => {
  it('5,000 frames of unknown devices: 5,000 counted and heard, one line, then one summary line with the count', async () => {
    const { lines, log } = capturingLogger();
    const service = new DeviceService(gateway.agent, gateway.registry, gateway.deviceStore, log);
    const heard: string[] = [];
    service.drops.onDrop = (code) => heard.push(code);
    const message = deviceRequest(Operation.Get, payload.get('k'));
    for (let i = 0; i < 5000; i++) {
      const { frame } = new DeviceClient(`ghost-${i}`, new Uint8Array(32), Suite.AES_256_GCM, memoryCounters()).seal(message);
      assert.equal(await service.handle(frame, `ghost-${i}`), undefined);
    }
    await settle();
    assert.equal(service.dropped.get('FRAME_UNKNOWN_DEVICE'), 5000);
    assert.equal(heard.length, 5000);
    const dropLines = () => lines.filter((l) => l.event === 'device_frame_dropped');
    assert.equal(dropLines().length, 1, 'one line, not 5,000');
    await service.close(); // reports what was held back
    await settle();
    assert.equal(dropLines().length, 2);
    assert.equal(dropLines()[1]!.suppressed, 4999);
    assert.equal(dropLines()[1]!.code, 'FRAME_UNKNOWN_DEVICE');
  });

  it('a failure inside the service is logged and counted; handle() resolves, never rejects', async () => {
    const { lines, log } = capturingLogger();
    const failing = { get: async () => { throw new Error('the store is gone'); }, list: async () => [] } as unknown as DeviceRegistry;
    const service = new DeviceService(gateway.agent, failing, gateway.deviceStore, log);
    const { frame } = new DeviceClient('any-dev', new Uint8Array(32), Suite.AES_256_GCM, memoryCounters()).seal(deviceRequest(Operation.Get, payload.get('k')));
    assert.equal(await service.handle(frame, 'any-dev'), undefined);
    await settle();
    assert.equal(service.dropped.get('DEVICE_INTERNAL_ERROR'), 1);
    assert.ok(lines.some((l) => l.event === 'device_frame_failed' && l.reason === 'the store is gone'));
    await service.close();
  });
});
