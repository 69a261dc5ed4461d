/**
 * The C examples (firmware-bridge/examples), built natively, against the running agent — every
 * part a real process (test/firmware/device-scenario.ts): posix-serial-device over socat pty
 * pairs, posix-mqtt-device through Mosquitto. Key by fingerprint, allocations in the ledger, a
 * lease, SIGKILL mid-run and restart without a reused counter, a replayed frame refused, a Put
 * Replace received and acknowledged; end-to-end nonce-MAC verified in C (PROTOCOL.md §5.1).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { before, it } from 'node:test';
import { keyBlockOf, keyMaterialOf } from '../../src/kmip/payloads.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, adminClient, createActiveKey, createMacKey, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';
import { buildFirmware, type FirmwareBuild } from './firmware-build.ts';
import { device, deviceScenario } from './device-scenario.ts';

let build: FirmwareBuild;
before(async () => {
  build = await buildFirmware('examples', { targets: ['posix-serial-device', 'posix-mqtt-device'] });
});

it('posix-serial-device on a serial line (socat pty pairs) against kmip-edge run', async () => {
  await deviceScenario({ command: build.example('posix-serial-device'), args: [] }, 'serial', 'fb-serial');
});

it('posix-mqtt-device through Mosquitto against kmip-edge run', async () => {
  await deviceScenario({ command: build.example('posix-mqtt-device'), args: [] }, 'mqtt', 'fb-mqtt');
});

it('posix-mqtt-device get-verified: end-to-end nonce-MAC verified in C (the key server\'s key); a wrong MAC key is refused', async () => {
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('fb-nonce');
  const admin = adminClient(kms, port);
  let agent: ChildProcess | undefined;
  try {
    const { uid: macUid, material: macKey } = await createMacKey(admin);
    const uid = await createActiveKey(kms, port, 'fb-verified');
    const key = addDevice(data, 'fb-verifier', uid, macUid);
    agent = (await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${broker.port}`])).child;
    const program = { command: build.example('posix-mqtt-device'), args: [] };
    const identity = ['--id', 'fb-verifier', '--key', key, '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--state', join(work, 'state'), '--timeout', '20'];
    // Twice: the first sets the key's first x-Nonce (Modify fails, then Add), the second replaces it (Modify).
    const verified = await device(program, [...identity, 'get-verified', '--uid', uid, '--mac-uid', macUid, '--mac-key', macKey, '--repeat', '2']);
    assert.equal(verified.status, 0, `${JSON.stringify(verified.lines)} ${verified.stderr}`);
    const serverKey = createHash('sha256').update(keyMaterialOf(keyBlockOf((await admin.get(uid)).object))).digest('hex').slice(0, 16);
    assert.deepEqual(verified.lines.map((l) => [l.op, l.ok, (l as { verified?: boolean }).verified, l.fingerprint, l.bytes]), [['get-verified', true, true, serverKey, 32], ['get-verified', true, true, serverKey, 32]]);
    const wrong = await device(program, [...identity, 'get-verified', '--uid', uid, '--mac-uid', macUid, '--mac-key', '00'.repeat(32)]);
    assert.equal(wrong.status, 1);
    assert.deepEqual(wrong.lines.map((l) => [l.ok, (l as { verified?: boolean }).verified, l.error]), [[false, false, 'FB_ERR_MAC']]);
    assert.equal(await terminate(agent), 0);
    agent = undefined;
  } finally {
    agent?.kill('SIGKILL');
    await admin.close();
    server.kill('SIGTERM');
    await broker.stop();
  }
});
