/**
 * `kmip-edge status --data DIR [--json]` (CLI.md): a running agent's state, asked through its
 * owner-only admin socket (device-admin.ts) — the upstream (online/offline, since when, the last
 * failure), MQTT, each key with its state, lease expiry and remaining allocation, each device with
 * when it was last heard from and the pushes waiting for its acknowledgement. Read-only; no key
 * material, no device keys. With no agent running: one line, exit 1.
 *
 * Also here: the agent's side of `status`, `ledger` and `cache` on that socket (agentQueries).
 */
import { isoTime } from '../iso-time.ts';
import { parseArgs } from 'node:util';
import type { AgentCore } from '../agent/agent-core.ts';
import type { DeviceRegistry } from '../devices/registry.ts';
import { isKmipEdgeError } from '../errors.ts';
import { observer } from '../metrics/observer.ts';
import { pendingPushes } from '../metrics/pending-pushes.ts';
import type { WatchedBreaker } from '../metrics/upstream-watch.ts';
import { cacheEntry, type CacheEntry } from './cache-command.ts';
import { SUITES, sendAgentQuery, type AgentQueries } from './device-admin.ts';
import { UsageError } from './errors.ts';
import { ledgerRows } from './ledger-command.ts';

export interface AgentStatus {
  pid: number;
  startedAt: string;
  upstream: { state: 'online' | 'offline'; since: string; lastError: { code: string; reason: string; at: string } | null };
  /** null: the agent has no MQTT transport. */
  mqtt: { connected: boolean } | null;
  metrics: string | null;
  keys: (Pick<CacheEntry, 'uniqueIdentifier' | 'names' | 'state' | 'leaseExpiresAt'> & { allocatedFromUpstream: number | null; grantedToDevices: number | null; remaining: number | null })[];
  devices: { id: string; suite: string; lastSeen: string | null; pendingPushes: number }[];
}


/** What the running agent answers on its socket for `status`, `ledger` and `cache`. */
export function agentQueries(parts: { agent: AgentCore; registry: DeviceRegistry; breaker: WatchedBreaker; mqttConnected?: () => boolean | undefined; metrics?: () => string | null }): AgentQueries {
  const { agent, registry, breaker } = parts;
  const startedAt = isoTime(Date.now());
  return {
    ledger: async () => ({ keys: await ledgerRows(agent.ledger) }),
    cache: async () => ({ keys: (await agent.listKeys()).map(cacheEntry) }),
    status: async (): Promise<Record<string, unknown>> => {
      const cached = (await agent.listKeys()).map(cacheEntry);
      const ledger = new Map((await ledgerRows(agent.ledger)).map((row) => [row.uniqueIdentifier, row]));
      const keys: AgentStatus['keys'] = cached.map((key) => {
        const row = ledger.get(key.uniqueIdentifier);
        ledger.delete(key.uniqueIdentifier);
        return { uniqueIdentifier: key.uniqueIdentifier, names: key.names, state: key.state, leaseExpiresAt: key.leaseExpiresAt, allocatedFromUpstream: row?.allocatedFromUpstream ?? null, grantedToDevices: row?.grantedToDevices ?? null, remaining: row?.remaining ?? null };
      });
      // a ledger for a key no longer cached (replaced by a Put): still units to account for
      for (const row of ledger.values()) keys.push({ uniqueIdentifier: row.uniqueIdentifier, names: [], state: 'NotCached', leaseExpiresAt: null, allocatedFromUpstream: row.allocatedFromUpstream, grantedToDevices: row.grantedToDevices, remaining: row.remaining });
      const pending = await pendingPushes(agent.store);
      const suiteName = (suite: number) => Object.entries(SUITES).find(([, s]) => s === suite)?.[0] ?? String(suite);
      const devices = (await registry.list()).map((device) => {
        const seen = observer.lastSeenAt(device.id);
        return { id: device.id, suite: suiteName(device.suite), lastSeen: seen === undefined ? null : isoTime(seen), pendingPushes: pending.get(device.id) ?? 0 };
      });
      const connected = parts.mqttConnected?.();
      const status: AgentStatus = {
        pid: process.pid,
        startedAt,
        upstream: { state: breaker.state, since: isoTime(breaker.since), lastError: breaker.lastError ? { ...breaker.lastError, at: isoTime(breaker.lastError.at) } : null },
        mqtt: connected === undefined ? null : { connected },
        metrics: parts.metrics?.() ?? null,
        keys,
        devices,
      };
      return status as unknown as Record<string, unknown>;
    },
  };
}

export async function runStatusCommand(args: string[], out: (text: string) => void, err: (text: string) => void = (text) => void process.stderr.write(text)): Promise<number> {
  const { values } = parseArgs({ args, options: { data: { type: 'string' }, json: { type: 'boolean', default: false } }, strict: true });
  if (values.data === undefined) throw new UsageError('status needs --data DIR');
  let answer: Record<string, unknown> | undefined;
  try {
    answer = await sendAgentQuery(values.data, 'status');
  } catch (error) {
    // A socket left by an agent that was killed, or an agent too old to know `status`.
    if (!isKmipEdgeError(error)) throw error;
    err(`kmip-edge: no running agent answers on ${values.data}: ${error.message.split('\n')[0]}\n`);
    return 1;
  }
  if (answer === undefined) {
    err(`kmip-edge: no agent is running on ${values.data} (no admin socket); start it with kmip-edge run --data ${values.data}\n`);
    return 1;
  }
  const status = answer as unknown as AgentStatus;
  if (values.json) {
    out(JSON.stringify(status) + '\n');
    return 0;
  }
  const lines = [
    `agent pid ${status.pid}, started ${status.startedAt}${status.metrics ? `, metrics on ${status.metrics}` : ''}`,
    `upstream ${status.upstream.state} since ${status.upstream.since}${status.upstream.lastError ? ` (last failure ${status.upstream.lastError.at}: ${status.upstream.lastError.reason})` : ''}`,
    `mqtt ${status.mqtt === null ? 'not used' : status.mqtt.connected ? 'connected' : 'disconnected'}`,
    `keys: ${status.keys.length}`,
    ...status.keys.map((k) => `  ${k.uniqueIdentifier} ${k.names.join(',') || '-'} ${k.state} lease ${k.leaseExpiresAt ?? 'unlimited'}${k.remaining === null ? '' : `, ${k.remaining} units remaining (${k.allocatedFromUpstream} allocated, ${k.grantedToDevices} granted)`}`),
    `devices: ${status.devices.length}`,
    ...status.devices.map((d) => `  ${d.id} ${d.suite} last seen ${d.lastSeen ?? 'never'}, ${d.pendingPushes} pushes pending`),
    ...kmipEndpointLines(answer),
  ];
  out(lines.join('\n') + '\n');
  return 0;
}

/** The local KMIP endpoint and the key pool (issue #16), when the agent runs them (`run --kmip-listen`). */
function kmipEndpointLines(answer: Record<string, unknown>): string[] {
  const endpoint = answer.kmipEndpoint as { listen: string; clients: number; openConnections: number } | null | undefined;
  const pool = answer.keyPool as { templates: { clientId: string; templateId: string; size: number; ready: number }[]; outbox: { pending: number; conflicted: number; entries: { uid: string; problems?: unknown }[] } } | null | undefined;
  if (!endpoint) return [];
  return [
    `kmip endpoint on ${endpoint.listen}: ${endpoint.clients} clients registered, ${endpoint.openConnections} connections open`,
    ...(pool ? pool.templates.map((t) => `  pool ${t.clientId} ${t.templateId}: ${t.ready} of ${t.size} keys ready`) : []),
    ...(pool ? [`  outbox: ${pool.outbox.pending} pending, ${pool.outbox.conflicted} in conflict${pool.outbox.conflicted > 0 ? ' (see status --json)' : ''}`] : []),
  ];
}
