/**
 * Builds firmware-bridge (the C library, its tests and the examples) with CMake for the tests in
 * this folder: natively, with sanitizers, or cross-compiled for armhf (cmake/arm-linux-gnueabihf.cmake,
 * run under qemu-arm). Every build is a clean one in a fresh temporary folder, as CI does; every
 * command has its own time bound. A missing toolchain fails the test that needs it (never a skip).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/cli.ts';

export const FIRMWARE = join(ROOT, 'firmware-bridge');
export const ARMHF_TOOLCHAIN = join(FIRMWARE, 'cmake/arm-linux-gnueabihf.cmake');
/** qemu-user with the armhf loader and C library (Debian's multiarch root for arm-linux-gnueabihf). */
export const QEMU_ARM = ['qemu-arm', '-L', '/usr/arm-linux-gnueabihf'];

export interface RunResult { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }

/** Runs a command to its end, or kills it (its whole process group) after `timeoutMs`. */
export function run(command: string, args: string[], options: { cwd?: string; timeoutMs: number; env?: NodeJS.ProcessEnv }): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${options.timeoutMs} ms]`;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${command} cannot run (${error.message}): is it installed? scripts/install-peers.sh installs the firmware-bridge toolchains`));
    });
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** Like run, but throws (with the command's output) unless it exits 0. */
export async function mustRun(command: string, args: string[], options: { cwd?: string; timeoutMs: number; env?: NodeJS.ProcessEnv }): Promise<RunResult> {
  const result = await run(command, args, options);
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.status ?? result.signal} after ${Math.round(result.ms)} ms:\n${result.stdout.slice(-4000)}\n${result.stderr.slice(-4000)}`);
  }
  return result;
}

export interface FirmwareBuild {
  dir: string;
  /** Wall-clock milliseconds of configure and of build. */
  configureMs: number;
  buildMs: number;
  /** An example or tool of this build: build/examples/NAME. */
  example(name: string): string;
}

/**
 * A clean configure + build of firmware-bridge in a fresh folder. `options` are -D settings;
 * `toolchain` a CMake toolchain file; `targets` limits the build (default: everything).
 */
export async function buildFirmware(name: string, options: { toolchain?: string; defines?: Record<string, string>; targets?: string[]; compiler?: string; timeoutMs?: number } = {}): Promise<FirmwareBuild> {
  if (!existsSync(join(FIRMWARE, 'CMakeLists.txt'))) throw new Error(`${FIRMWARE}/CMakeLists.txt is missing`);
  const dir = mkdtempSync(join(tmpdir(), `kmip-edge-fb-${name}-`));
  const defines = { CMAKE_BUILD_TYPE: 'RelWithDebInfo', ...options.defines };
  const env = { ...process.env, ...(options.compiler && { CC: options.compiler }) };
  const configure = await mustRun('cmake', ['-S', FIRMWARE, '-B', dir, ...(options.toolchain ? [`-DCMAKE_TOOLCHAIN_FILE=${options.toolchain}`] : []), ...Object.entries(defines).map(([k, v]) => `-D${k}=${v}`)], { timeoutMs: options.timeoutMs ?? 120_000, env });
  const build = await mustRun('cmake', ['--build', dir, '--parallel', '2', ...(options.targets ? ['--target', ...options.targets] : [])], { timeoutMs: options.timeoutMs ?? 240_000, env });
  return { dir, configureMs: configure.ms, buildMs: build.ms, example: (example) => join(dir, 'examples', example) };
}

/** What an ELF file is built for, from its header (no `file` command needed): "32-bit ARM" etc. */
export function elfMachine(path: string): string {
  const header = readFileSync(path).subarray(0, 20);
  if (header.length < 20 || header.readUInt32BE(0) !== 0x7f454c46) return 'not ELF';
  const bits = header[4] === 1 ? '32-bit' : header[4] === 2 ? '64-bit' : '?-bit';
  const machine = header[5] === 1 ? header.readUInt16LE(18) : header.readUInt16BE(18);
  const names: Record<number, string> = { 3: 'x86', 40: 'ARM', 62: 'x86-64', 183: 'AArch64' };
  return `${bits} ${names[machine] ?? `machine ${machine}`}`;
}
