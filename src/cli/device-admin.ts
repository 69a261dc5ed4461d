/**
 * Device provisioning (`kmip-edge device add|list|remove`, CLI.md) against a registry, and the
 * way it reaches a running agent: the agent holds its LevelDB store exclusively, so `kmip-edge
 * run` listens on a Unix socket in the data folder (`agent.sock`, owner only) and the device
 * command sends its request there when the store is locked. One JSON request per connection,
 * one JSON answer — the same output and exit code as when the command opens the store itself.
 */
import { existsSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { KmipEdgeError } from '../errors.ts';
import { Suite } from '../devices/frame.ts';
import { DEVICE_OPERATIONS, type DeviceLimits, type DeviceOperation, type DeviceRegistry, type KeyRule } from '../devices/registry.ts';
import { toHex } from '../ttlv/hex.ts';
import { requestJsonLine, serveJsonLines } from '../net/json-line-socket.ts';
import { resetCounterAnswer } from './device-reset-counter.ts';

export const AGENT_SOCKET = 'agent.sock';
/** A request line is small: an id, a few key rules and operations. */
const MAX_REQUEST_BYTES = 16 * 1024;

export const SUITES: Record<string, Suite> = { 'aes-256-gcm': Suite.AES_256_GCM, 'chacha20-poly1305': Suite.CHACHA20_POLY1305 };
const suiteName = (suite: Suite): string => Object.entries(SUITES).find(([, s]) => s === suite)![0];

export type DeviceRequest =
  | { action: 'list' }
  | { action: 'remove'; id: string }
  | { action: 'reset-counter'; id: string; floor?: string }
  | { action: 'add'; id: string; suite: string; keys: KeyRule[]; operations?: DeviceOperation[]; limits: Partial<DeviceLimits> };

export interface DeviceAnswer {
  output: Record<string, unknown>;
  code: number;
}

/** Carries out one request; bad requests are KmipEdgeErrors with code CLI_USAGE or DEVICE_… (exit 2). */
export async function executeDeviceRequest(registry: DeviceRegistry, request: DeviceRequest): Promise<DeviceAnswer> {
  if (request.action === 'list') return { output: { devices: (await registry.list()).map((d) => ({ ...d, suite: suiteName(d.suite) })) }, code: 0 };
  if (request.action === 'reset-counter') return resetCounterAnswer(registry.store, registry, request.id, request.floor);
  if (request.action === 'remove') {
    const removed = await registry.remove(request.id);
    return { output: { id: request.id, removed }, code: removed ? 0 : 1 };
  }
  const suite = SUITES[request.suite];
  if (suite === undefined) throw new KmipEdgeError('CLI_USAGE', '--suite must be aes-256-gcm or chacha20-poly1305');
  const unknown = request.operations?.find((op) => !(DEVICE_OPERATIONS as readonly string[]).includes(op));
  if (unknown) throw new KmipEdgeError('CLI_USAGE', `--operation ${unknown}: one of ${DEVICE_OPERATIONS.join(', ')}`);
  const device = await registry.add(request.id, { suite, keys: request.keys, limits: request.limits, ...(request.operations && { operations: request.operations }) });
  return { output: { id: device.id, suite: suiteName(device.suite), key: toHex(device.key) }, code: 0 };
}

/** The running agent's side: serves device requests on `<data>/agent.sock`; `changed` hears each add or remove. */
export function serveDeviceAdmin(data: string, registry: DeviceRegistry, changed: (id: string) => void): Promise<Server> {
  // The store lock guarantees this process is the only agent on `data`: a socket file left by a killed one is replaced.
  return serveJsonLines(join(data, AGENT_SOCKET), async (line): Promise<DeviceAnswer | { error: { code: string; message: string } }> => {
    try {
      const request = JSON.parse(line) as DeviceRequest;
      const reply = await executeDeviceRequest(registry, request);
      if (request.action !== 'list') changed(request.id);
      return reply;
    } catch (error) {
      return { error: { code: (error as { code?: string }).code ?? 'DEVICE_ADMIN_FAILED', message: (error as Error).message } };
    }
  }, MAX_REQUEST_BYTES);
}

/** The device command's side: sends `request` to the agent running on `data`, if its socket is there. */
export async function sendDeviceAdmin(data: string, request: DeviceRequest): Promise<DeviceAnswer | undefined> {
  const path = join(data, AGENT_SOCKET);
  if (!existsSync(path)) return undefined;
  const text = await requestJsonLine(path, request).catch((error: Error) => {
    throw new KmipEdgeError('AGENT_UNREACHABLE', `the running agent's socket ${path}: ${error.message}`, { cause: error });
  });
  let reply: DeviceAnswer | { error: { code: string; message: string } };
  try {
    reply = JSON.parse(text) as typeof reply;
  } catch {
    throw new KmipEdgeError('AGENT_UNREACHABLE', 'the running agent gave no answer');
  }
  if ('error' in reply) throw new KmipEdgeError(reply.error.code, reply.error.message);
  return reply;
}
