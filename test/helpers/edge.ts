/**
 * The edge KMIP service for tests (test/edge/): the development server upstream, the agent core
 * on LevelDB, the service with an optional offline creator and its log lines captured, and local
 * clients that send it KMIP Request Messages as a door would hand them over.
 */
import { Writable } from 'node:stream';
import { EdgeKmipService } from '../../src/edge/edge-kmip-service.ts';
import type { OfflineCreateRequest, OfflineCreator, Principal } from '../../src/edge/principal.ts';
import type { KeyRule } from '../../src/devices/registry.ts';
import { buildRequestMessage, parseResponseMessage, type ProtocolVersion, type RequestBatchItem, type RequestHeaderOptions, type ResponseMessage } from '../../src/kmip/message.ts';
import { Tag } from '../../src/kmip/tables.generated.ts';
import { createLogger } from '../../src/log.ts';
import { interval } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { enumeration } from '../../src/ttlv/build.ts';
import { State } from '../../src/kmip/tables.generated.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { startDevServer } from './dev-server.ts';

export const ALL_CLIENT_OPERATIONS = [
  'Create', 'Register', 'Locate', 'Check', 'Get', 'GetAttributes', 'GetAttributeList', 'AddAttribute', 'ModifyAttribute', 'DeleteAttribute',
  'ObtainLease', 'GetUsageAllocation', 'Activate', 'Revoke', 'Destroy', 'Query', 'DiscoverVersions',
];

export function localClient(id: string, keys: KeyRule[], operations: string[] = ALL_CLIENT_OPERATIONS): Principal {
  return { kind: 'client', id, keys, operations };
}

/** Log lines as parsed JSON, and the raw text (to check what never appears in it). */
export class CapturedLog extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    const text = chunk.toString();
    this.text += text;
    for (const line of text.split('\n')) if (line.trim()) this.lines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  }

  events(name: string): Record<string, unknown>[] {
    return this.lines.filter((line) => line.event === name);
  }
}

/**
 * A real, in-memory key pool for tests: keys created upstream ahead of need (while online) and
 * fetched into the cache; an offline Create takes one whose algorithm, length and usage mask
 * match, and applies the requested attributes (and activation, with a lease) to the cached key.
 * The durable pool and its outbox are src/edge/key-pool.ts and outbox.ts.
 */
export class MemoryPool implements OfflineCreator {
  readonly taken: OfflineCreateRequest[] = [];
  private readonly keys: { uid: string; algorithm: number; length: number; usageMask: number }[] = [];

  constructor(private readonly agent: AgentCore) {}

  async add(uid: string, algorithm: number, length: number, usageMask: number): Promise<void> {
    await this.agent.cache.get(uid);
    this.keys.push({ uid, algorithm, length, usageMask });
  }

  get size(): number {
    return this.keys.length;
  }

  async takeOffline(request: OfflineCreateRequest): Promise<string | undefined> {
    const index = this.keys.findIndex((k) => k.algorithm === request.algorithm && k.length === request.length && (request.usageMask === undefined || k.usageMask === request.usageMask));
    if (index < 0) return undefined;
    const [key] = this.keys.splice(index, 1);
    this.taken.push(request);
    const activation = request.activate
      ? [{ name: 'State', value: enumeration(Tag.AttributeValue, State.Active) }, { name: 'Lease Time', value: interval(Tag.AttributeValue, 600) }]
      : [];
    await this.agent.cache.applyNotify(key!.uid, [...request.attributes, ...activation]);
    if (request.alongside) await this.agent.store.commit(request.alongside(key!.uid));
    return key!.uid;
  }
}

/**
 * The development server (lease 600 s), the agent core on LevelDB in a temporary folder and the
 * service. The agent's upstream client does not retry and reconnects quickly, so that once the
 * development server is stopped (`dev.stop()`) the key server is unreachable at once.
 */
export async function startEdge(options: { offlineCreator?: (agent: AgentCore) => OfflineCreator | Promise<OfflineCreator> } = {}) {
  const dev = await startDevServer({ leaseSeconds: 600 });
  const admin = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
  const client = new KmipClient({ transport: new TlsPool(dev.endpoint, { minBackoffMs: 10, maxBackoffMs: 50 }), version: { major: 1, minor: 2 }, retries: 0, timeoutMs: 2000 });
  const agent = await AgentCore.open({ data: mkdtempSync(join(tmpdir(), 'kmip-edge-edge-')), client, ledger: { minChunk: 50n } });
  const log = new CapturedLog();
  const offlineCreator = await options.offlineCreator?.(agent);
  const edge = new EdgeKmipService(agent, agent.store, createLogger({ level: 'info' }, log), { offlineCreator });
  let requests = 0;
  /** One request message from `principal`; the parsed response. */
  async function ask(principal: Principal, items: RequestBatchItem[], header: RequestHeaderOptions = {}, version: ProtocolVersion = { major: 1, minor: 2 }): Promise<ResponseMessage & { bytes: number; invalid: boolean }> {
    const bytes = encodeTtlv(buildRequestMessage(version, items, header));
    const answer = await edge.handle(principal, bytes, `test-${++requests}`);
    return { ...parseResponseMessage(decodeTtlv(answer.response)), bytes: answer.response.length, invalid: answer.invalid };
  }
  async function stop(): Promise<void> {
    await agent.close();
    await client.close();
    await admin.close();
    await dev.stop();
  }
  return { dev, admin, agent, edge, log, offlineCreator, ask, stop };
}
