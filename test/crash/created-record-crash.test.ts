/**
 * Crash test of an offline Create's records (issue #16 "Crash"; 66c2521 `alongside`): the edge
 * KMIP service answers a local client's Create from the key pool, and the pool's take and the
 * service's record that the client created the key (created-keys.ts) must land in ONE synced
 * batch. A child process (created-record-child.ts) fills the pool while the development server
 * runs; the server is stopped; the child sends the Create and is SIGKILLed — by itself, at the
 * pool's `pool_key_taken` line — right after the take's batch is synced and before the service
 * writes anything of its own. With the child gone, the store is opened again:
 * - the key is taken (no longer pooled, its outbox entry with the Name pending) and the creator's
 *   record is there with it;
 * - the client, whose allow-list names no key, gets the key by Get (the key server's bytes, from
 *   the cache) and finds it by Name; another client does not.
 * Without the record in the take's batch, a key would be taken for a client that may never see
 * it: its Name written upstream, the key lost to everyone.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { CircuitBreaker } from '../../src/agent/circuit-breaker.ts';
import { CREATED_PREFIX } from '../../src/edge/created-keys.ts';
import { EdgeKmipService } from '../../src/edge/edge-kmip-service.ts';
import { KeyPool, POOL_TAKEN } from '../../src/edge/key-pool.ts';
import { nameValue } from '../../src/kmip/attributes.ts';
import { buildRequestMessage, parseResponseMessage, type ResponseBatchItem } from '../../src/kmip/message.ts';
import { keyBlockOf, keyMaterialOf, payload, readGet, readLocate } from '../../src/kmip/payloads.ts';
import { Operation, ResultReason, ResultStatus } from '../../src/kmip/tables.generated.ts';
import { silentLogger } from '../../src/log.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import type { Principal } from '../../src/edge/principal.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { ROOT } from '../helpers/cli.ts';
import { localClient } from '../helpers/edge.ts';
import { adminClient, startKeyServer, terminate } from '../helpers/processes.ts';
import { CRASH_CLIENT, CRASH_NAME, crashClients, crashPrincipal } from './created-record-child.ts';

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: Record<string, unknown>[];
  stderr: string;
}

function runChild(args: string[]): Promise<Outcome> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/crash/created-record-child.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const bound = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) => child.once('close', (code, signal) => {
    clearTimeout(bound);
    resolve({ code, signal, stderr, lines: stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>) });
  }));
}

it('SIGKILL right after an offline Create\'s take is synced: the creator\'s record is in the same batch — the client gets its key after the restart', { timeout: 240_000 }, async () => {
  const { kms, data, port, server } = await startKeyServer('created-record-crash');
  const args = (mode: string) => [mode, data, kms, String(port)];
  let serverUp = true;
  try {
    const fill = await runChild(args('fill'));
    assert.equal(fill.code, 0, fill.stderr);
    const filled = fill.lines.find((line) => line.filled)!.filled as string[];
    const admin = adminClient(kms, port);
    const bytes = new Map<string, string>();
    try {
      for (const uid of filled) bytes.set(uid, toHex(keyMaterialOf(keyBlockOf((await admin.get(uid)).object))));
    } finally {
      await admin.close();
    }
    await terminate(server);
    serverUp = false;

    const create = await runChild(args('create'));
    assert.equal(create.signal, 'SIGKILL', `the child was to be killed at pool_key_taken: exit ${create.code}, ${JSON.stringify(create.lines.at(-1))} ${create.stderr}`);
    assert.ok(!create.lines.some((line) => 'answered' in line), 'killed before the answer');
    const taken = create.lines.find((line) => line.event === 'pool_key_taken')!;
    const uid = String(taken.uid);
    assert.ok(filled.includes(uid));

    // The store after the kill, with the key server still down.
    const client = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port, ca: readFileSync(join(kms, 'ca.pem')), cert: readFileSync(join(kms, 'client.pem')), key: readFileSync(join(kms, 'client.key')) }), version: { major: 1, minor: 2 }, retries: 0, timeoutMs: 1000 });
    const agent = await AgentCore.open({ data, client, breaker: new CircuitBreaker(1, 60_000) });
    try {
      const pool = await KeyPool.open({ agent, clients: crashClients });
      assert.ok(await agent.store.get(POOL_TAKEN + encodeURIComponent(uid)), 'the take is durable');
      assert.ok(!pool.holds(uid), 'no longer pooled');
      assert.deepEqual(pool.pendingAttributes(uid)?.map((a) => a.name), ['Name'], 'its Name pending in the outbox');
      assert.ok(await agent.store.get(`${CREATED_PREFIX}${encodeURIComponent(CRASH_CLIENT)}/${encodeURIComponent(uid)}`), 'the creator\'s record landed with the take');

      const service = new EdgeKmipService(agent, agent.store, silentLogger, { offlineCreator: pool });
      const one = async (principal: Principal, operation: number, items: ReturnType<typeof payload.get>): Promise<ResponseBatchItem> =>
        parseResponseMessage(decodeTtlv((await service.handle(principal, encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation, payload: items }])), `after-${operation}`)).response)).batchItems[0]!;
      const got = await one(crashPrincipal(), Operation.Get, payload.get(uid));
      assert.equal(got.resultStatus, ResultStatus.Success, got.resultMessage);
      assert.equal(toHex(keyMaterialOf(keyBlockOf(readGet(got.payload!).object))), bytes.get(uid), 'the key server\'s bytes, from the cache');
      const found = await one(crashPrincipal(), Operation.Locate, payload.locate({ attributes: [{ name: 'Name', value: nameValue(CRASH_NAME) }] }));
      assert.deepEqual(readLocate(found.payload!).uniqueIdentifiers, [uid]);
      assert.equal((await one(localClient('lib-other', []), Operation.Get, payload.get(uid))).resultReason, ResultReason.ItemNotFound, 'another client does not see it');
      const still = filled.find((u) => u !== uid)!;
      assert.equal((await one(crashPrincipal(), Operation.Get, payload.get(still))).resultReason, ResultReason.ItemNotFound, 'the key still pooled stays hidden');
    } finally {
      await agent.close();
      await client.close();
    }
  } finally {
    if (serverUp) await terminate(server);
  }
});
