/**
 * The armhf build of posix-serial-device (cmake/arm-linux-gnueabihf.cmake), run under qemu-arm,
 * against the running agent through socat pty pairs: the same scenario as the native examples
 * (device-scenario.ts) — qemu-user passes the pty's termios calls through to this machine.
 */
import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { ARMHF_TOOLCHAIN, buildFirmware, elfMachine, QEMU_ARM, type FirmwareBuild } from './firmware-build.ts';
import { deviceScenario } from './device-scenario.ts';

let build: FirmwareBuild;
before(async () => {
  build = await buildFirmware('armhf-example', { toolchain: ARMHF_TOOLCHAIN, targets: ['posix-serial-device'] });
});

it('the example is a 32-bit ARM program', async () => {
  assert.equal(elfMachine(build.example('posix-serial-device')), '32-bit ARM');
});

it('posix-serial-device built for armhf, under qemu-arm, on a serial line against kmip-edge run', async () => {
  const [qemu, ...qemuArgs] = QEMU_ARM;
  await deviceScenario({ command: qemu!, args: [...qemuArgs, build.example('posix-serial-device')] }, 'serial', 'fb-armhf');
});
