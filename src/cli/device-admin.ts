/**
 * Device provisioning (`kmip-edge device add|list|remove`, CLI.md) against a registry, and the
 * way it reaches a running agent: the agent holds its LevelDB store exclusively, so `kmip-edge
 * run` listens on a Unix socket in the data folder (`agent.sock`, owner only) and the device
 * command sends its request there when the store is locked. One JSON request per connection,
 * one JSON answer — the same output and exit code as when the command opens the store itself.
 * The same socket answers the read-only questions of `kmip-edge status`, `ledger` and `cache`
 * (AgentQuery) from the agent's live state. Each registry change is logged (`device_added`,
 * `device_removed`, `device_updated`).
 */
import { existsSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { KmipEdgeError } from '../errors.ts';
import { Suite } from '../devices/frame.ts';
import { DEVICE_OPERATIONS, type DeviceLimits, type DeviceOperation, type DeviceRegistry, type KeyRule } from '../devices/registry.ts';
import { toHex } from '../ttlv/hex.ts';
import { requestJsonLine, serveJsonLines } from '../net/json-line-socket.ts';
import { silentLogger, type Logger } from '../log.ts';
import { observer } from '../metrics/observer.ts';
import { resetCounterAnswer } from './device-reset-counter.ts';
import { agentBackup, isBackupRequest, type BackupRequest } from './backup-agent.ts';
import { isClientRequest, type ClientRequest } from './client-admin.ts';

export const AGENT_SOCKET = 'agent.sock';
/** A request line is small: an id, a few key rules and operations. */
const MAX_REQUEST_BYTES = 16 * 1024;

export const SUITES: Record<string, Suite> = { 'aes-256-gcm': Suite.AES_256_GCM, 'chacha20-poly1305': Suite.CHACHA20_POLY1305 };
const suiteName = (suite: Suite): string => Object.entries(SUITES).find(([, s]) => s === suite)![0];

export type DeviceRequest =
  | { action: 'list' }
  | { action: 'remove'; id: string }
  | { action: 'reset-counter'; id: string; floor?: string }
  | { action: 'add'; id: string; suite: string; keys: KeyRule[]; operations?: DeviceOperation[]; limits: Partial<DeviceLimits> }
  | { action: 'update'; id: string; keys?: KeyRule[]; operations?: DeviceOperation[]; limits: Partial<DeviceLimits> };

export interface DeviceAnswer {
  output: Record<string, unknown>;
  code: number;
}

function checkOperations(operations: readonly string[] | undefined): void {
  const unknown = operations?.find((op) => !(DEVICE_OPERATIONS as readonly string[]).includes(op));
  if (unknown) throw new KmipEdgeError('CLI_USAGE', `--operation ${unknown}: one of ${DEVICE_OPERATIONS.join(', ')}`);
}

/** Carries out one request; bad requests are KmipEdgeErrors with code CLI_USAGE or DEVICE_… (exit 2). */
export async function executeDeviceRequest(registry: DeviceRegistry, request: DeviceRequest): Promise<DeviceAnswer> {
  if (request.action === 'list') return { output: { devices: (await registry.list()).map((d) => ({ ...d, suite: suiteName(d.suite) })) }, code: 0 };
  if (request.action === 'reset-counter') return resetCounterAnswer(registry.store, registry, request.id, request.floor);
  if (request.action === 'remove') {
    const removed = await registry.remove(request.id);
    return { output: { id: request.id, removed }, code: removed ? 0 : 1 };
  }
  if (request.action === 'update') {
    checkOperations(request.operations);
    const device = await registry.update(request.id, { ...(request.keys && { keys: request.keys }), ...(request.operations && { operations: request.operations }), limits: request.limits });
    return device ? { output: { ...device, suite: suiteName(device.suite), updated: true }, code: 0 } : { output: { id: request.id, updated: false }, code: 1 };
  }
  const suite = SUITES[request.suite];
  if (suite === undefined) throw new KmipEdgeError('CLI_USAGE', '--suite must be aes-256-gcm or chacha20-poly1305');
  checkOperations(request.operations);
  const device = await registry.add(request.id, { suite, keys: request.keys, limits: request.limits, ...(request.operations && { operations: request.operations }) });
  return { output: { id: device.id, suite: suiteName(device.suite), key: toHex(device.key) }, code: 0 };
}

/** Read-only questions a running agent answers on its socket (`kmip-edge status`, `ledger`, `cache`). */
export const AGENT_QUERIES = ['status', 'ledger', 'cache'] as const;
export type AgentQuery = (typeof AGENT_QUERIES)[number];
export type AgentQueries = Partial<Record<AgentQuery, () => Promise<Record<string, unknown>>>>;

/** The event logged for each registry change, by action. */
const DEVICE_EVENTS: Record<string, string> = { add: 'device_added', remove: 'device_removed', update: 'device_updated' };

/**
 * The running agent's side: serves device requests on `<data>/agent.sock`; `changed` hears each
 * add or remove; `queries` answers the read-only questions; `log` gets one line per change;
 * `flushCounters` writes the device counters the agent holds back; `clients` carries out the
 * requests of `kmip-edge client` (./client-admin.ts).
 */
export function serveDeviceAdmin(data: string, registry: DeviceRegistry, changed: (id: string) => void, queries: AgentQueries = {}, log: Logger = silentLogger, flushCounters: () => Promise<void> = async () => undefined, clients?: (request: ClientRequest) => Promise<DeviceAnswer>): Promise<Server> {
  // The store lock guarantees this process is the only agent on `data`: a socket file left by a killed one is replaced.
  return serveJsonLines(join(data, AGENT_SOCKET), async (line): Promise<DeviceAnswer | { error: { code: string; message: string } }> => {
    try {
      const request = JSON.parse(line) as DeviceRequest | BackupRequest | ClientRequest | { action: AgentQuery };
      if (isClientRequest(request)) {
        if (!clients) throw new KmipEdgeError('CLIENT_UNSUPPORTED', 'this agent does not keep KMIP clients');
        return await clients(request);
      }
      const query = (AGENT_QUERIES as readonly string[]).includes(request.action) ? queries[request.action as AgentQuery] : undefined;
      if (query) return { output: await query(), code: 0 };
      // A counter reset starts from the highest counter accepted: the counters of reads are
      // written a little later (replay-guard.ts), so they are written first.
      if (request.action === 'reset-counter') await flushCounters();
      // `kmip-edge backup` while the agent runs: the agent snapshots its own store (backup-agent.ts),
      // after writing the device counters it holds back, so a restored agent refuses every replay.
      if (isBackupRequest(request)) {
        await flushCounters();
        return { output: { ...(await agentBackup(data, registry.store, request)) }, code: 0 };
      }
      const reply = await executeDeviceRequest(registry, request as DeviceRequest);
      if ('id' in request) {
        changed(request.id);
        if (request.action === 'remove') observer.deviceRemoved(request.id);
        const event = DEVICE_EVENTS[request.action];
        if (event && reply.code === 0) log.info({ event, device: request.id, ...(typeof reply.output.suite === 'string' && { suite: reply.output.suite }) }, `device ${request.action}: ${request.id}`);
      }
      return reply;
    } catch (error) {
      return { error: { code: (error as { code?: string }).code ?? 'DEVICE_ADMIN_FAILED', message: (error as Error).message } };
    }
  }, MAX_REQUEST_BYTES);
}

/** `status`, `ledger`, `cache`: the running agent's answer to `query`; undefined when no agent socket is there. */
export async function sendAgentQuery(data: string, query: AgentQuery): Promise<Record<string, unknown> | undefined> {
  return (await sendAdminLine(data, { action: query }))?.output;
}

/** The device command's side: sends `request` to the agent running on `data`, if its socket is there. */
export function sendDeviceAdmin(data: string, request: DeviceRequest): Promise<DeviceAnswer | undefined> {
  return sendAdminLine(data, request);
}

/** The client command's side: sends `request` to the agent running on `data`, if its socket is there. */
export function sendClientAdmin(data: string, request: ClientRequest): Promise<DeviceAnswer | undefined> {
  return sendAdminLine(data, request);
}

/** `kmip-edge backup`'s side: asks the agent running on `data` to write a backup; undefined when no agent socket is there. */
export function sendBackupRequest(data: string, request: BackupRequest): Promise<DeviceAnswer | undefined> {
  return sendAdminLine(data, request);
}

async function sendAdminLine(data: string, request: DeviceRequest | BackupRequest | ClientRequest | { action: AgentQuery }): Promise<DeviceAnswer | undefined> {
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
