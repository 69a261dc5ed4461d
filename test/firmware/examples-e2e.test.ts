/**
 * The C examples (firmware-bridge/examples), built natively, against the running agent — every
 * part a real process (test/firmware/device-scenario.ts): posix-serial-device over socat pty
 * pairs, posix-mqtt-device through Mosquitto. Key by fingerprint, allocations in the ledger, a
 * lease, SIGKILL mid-run and restart without a reused counter, a replayed frame refused, a Put
 * Replace received and acknowledged.
 */
import { before, it } from 'node:test';
import { buildFirmware, type FirmwareBuild } from './firmware-build.ts';
import { deviceScenario } from './device-scenario.ts';

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
