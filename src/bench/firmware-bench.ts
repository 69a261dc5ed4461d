/**
 * `kmip-edge bench firmware`: frames sealed and opened per second by the C library
 * (firmware-bridge, PSA Crypto backend on Mbed TLS, built -O2 by CMake as
 * firmware-bridge/build-bench/examples/fb-frame-bench) next to the TypeScript implementation
 * (src/devices/frame.ts sealFrame/openFrame, OpenSSL through node:crypto), in the same run, for
 * the same suite, device id and body sizes. Each side: a warm-up, five timed rounds, the median.
 * The C program is brought up to date first (cmake; a minute at most the first time).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../cli/package-root.ts';
import { openFrame, sealFrame, Suite } from '../devices/frame.ts';
import { measureOpsPerSecond } from './measure.ts';

export interface FirmwareBenchResult {
  bench: 'firmware';
  suite: 'aes-256-gcm' | 'chacha20-poly1305';
  bodyBytes: number;
  frameBytes: number;
  cSealPerSec: number;
  cOpenPerSec: number;
  tsSealPerSec: number;
  tsOpenPerSec: number;
}

/** Body sizes: a device's request (a Get Usage Allocation is ~100 bytes) and a Get response carrying an AES-256 key. */
const BODY_SIZES = [96, 312];
const SUITES = ['aes-256-gcm', 'chacha20-poly1305'] as const;
const DEVICE_ID = 'bench-device';

/**
 * The C benchmark program, built (Release) in firmware-bridge/build-bench (git-ignored):
 * configured once, and brought up to date on every run (a no-op when nothing changed), so that it
 * is never an old build of the library that is measured.
 */
function cBench(root: string): string {
  const source = join(root, 'firmware-bridge');
  const build = join(source, 'build-bench');
  const steps = [['--build', build, '--parallel', '2', '--target', 'fb-frame-bench']];
  if (!existsSync(join(build, 'CMakeCache.txt'))) steps.unshift(['-S', source, '-B', build, '-DCMAKE_BUILD_TYPE=Release', '-DFB_BUILD_TESTS=OFF', '-DFB_EXAMPLE_MQTT=OFF']);
  for (const args of steps) {
    const step = spawnSync('cmake', args, { encoding: 'utf8', timeout: 180_000 });
    if (step.error || step.status !== 0) {
      throw new Error(`bench firmware: cmake ${args.join(' ')} failed (needs cmake, a C compiler and libmbedtls-dev: scripts/install-peers.sh): ${step.error?.message ?? step.stderr.slice(-2000)}`);
    }
  }
  return join(build, 'examples', 'fb-frame-bench');
}

function runC(program: string, suite: string, body: number, seconds: number): { sealPerSec: number; openPerSec: number; frameBytes: number } {
  const run = spawnSync(program, ['--seconds', String(seconds), '--body', String(body), '--suite', suite], { encoding: 'utf8', timeout: (seconds * 2 + 30) * 1000 });
  if (run.status !== 0) throw new Error(`bench firmware: ${program} exited ${run.status}: ${run.stderr}`);
  return JSON.parse(run.stdout) as { sealPerSec: number; openPerSec: number; frameBytes: number };
}

export async function benchFirmware(options: { seconds: number; json: boolean; out: (text: string) => void }): Promise<FirmwareBenchResult[]> {
  const program = cBench(packageRoot());
  const key = Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 1) & 0xff); // the C program's fixed key
  const results: FirmwareBenchResult[] = [];
  if (!options.json) options.out('Device frames, one core (frames/s; C = firmware-bridge with PSA Crypto on Mbed TLS, TS = src/devices/frame.ts on node:crypto, same run)\n');
  for (const suiteName of SUITES) {
    const suite = suiteName === 'aes-256-gcm' ? Suite.AES_256_GCM : Suite.CHACHA20_POLY1305;
    for (const bodyBytes of BODY_SIZES) {
      const body = Uint8Array.from({ length: bodyBytes }, (_, i) => i & 0xff);
      const c = runC(program, suiteName, bodyBytes, options.seconds);
      let counter = 0n;
      const tsSealPerSec = await measureOpsPerSecond(() => sealFrame({ suite, direction: 'up', deviceId: DEVICE_ID, counter: ++counter, replyTo: undefined }, key, body), options.seconds);
      const frame = sealFrame({ suite, direction: 'up', deviceId: DEVICE_ID, counter: 1n, replyTo: undefined }, key, body);
      if (frame.length !== c.frameBytes) throw new Error(`bench firmware: the C frame is ${c.frameBytes} bytes, the TypeScript one ${frame.length}: not the same work`);
      const tsOpenPerSec = await measureOpsPerSecond(() => openFrame(frame, key), options.seconds);
      const result: FirmwareBenchResult = {
        bench: 'firmware', suite: suiteName, bodyBytes, frameBytes: frame.length,
        cSealPerSec: Math.round(c.sealPerSec), cOpenPerSec: Math.round(c.openPerSec),
        tsSealPerSec: Math.round(tsSealPerSec), tsOpenPerSec: Math.round(tsOpenPerSec),
      };
      results.push(result);
      if (options.json) {
        options.out(JSON.stringify(result) + '\n');
      } else {
        const n = (x: number) => x.toLocaleString('en');
        options.out(`  ${suiteName}, ${bodyBytes}-byte body (${frame.length}-byte frame)\n` +
          `    seal  C ${n(result.cSealPerSec)}/s   TS ${n(result.tsSealPerSec)}/s   (C/TS ${(result.cSealPerSec / result.tsSealPerSec).toFixed(1)}×)\n` +
          `    open  C ${n(result.cOpenPerSec)}/s   TS ${n(result.tsOpenPerSec)}/s   (C/TS ${(result.cOpenPerSec / result.tsOpenPerSec).toFixed(1)}×)\n`);
      }
    }
  }
  return results;
}
