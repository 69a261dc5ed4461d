/**
 * Offline mode with real processes: the development server (LevelDB store) is stopped mid-run.
 * Requests covered by the cache, its lease and the remaining allocation keep succeeding; the
 * others fail with the specific error; after the server returns, refills and fills resume.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { CircuitBreaker } from '../../src/agent/circuit-breaker.ts';
import { ObjectType, Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { ROOT } from '../helpers/cli.ts';
import { freePort } from '../../src/bench/free-port.ts';

const code = (expected: string) => (error: unknown) => (error as { code?: string }).code === expected;

async function startServer(dir: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), 'dev-server', '--port', String(port), '--dir', dir, '--store', 'leveldb'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (exitCode) => reject(new Error(`dev-server exited ${exitCode}`)));
  });
  return child;
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

it('keeps serving what cache, lease and allocation cover while the upstream is down, and resumes after', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-offline-'));
  const port = await freePort();
  let server = await startServer(dir, port);
  const endpoint = () => ({ host: '127.0.0.1', port, ca: readFileSync(join(dir, 'ca.pem')), cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')) });
  const admin = new KmipClient({ transport: new TlsPool(endpoint()), version: { major: 1, minor: 2 } });
  const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 10_000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Object)]);
  const cached = await admin.create(ObjectType.SymmetricKey, aesKey('cached', undefined, [{ name: 'Usage Limits', value: limits }]));
  const uncached = await admin.create(ObjectType.SymmetricKey, aesKey('uncached'));
  await admin.activate(cached);
  await admin.activate(uncached);
  await admin.close();

  const client = new KmipClient({ transport: new TlsPool(endpoint(), { minBackoffMs: 10, maxBackoffMs: 100 }), version: { major: 1, minor: 2 }, retries: 0, timeoutMs: 2000 });
  const agent = await AgentCore.open({ data: mkdtempSync(join(tmpdir(), 'kmip-edge-offline-agent-')), client, breaker: new CircuitBreaker(1, 300), ledger: { minChunk: 50n, maxChunk: 50n } });
  try {
    await agent.getKey('tape-1', cached, 'protect');
    await agent.grantUnits('tape-1', 'r1', cached, 5n); // the ledger now holds a 50-unit allocation

    await stop(server);
    // Covered: a cached key inside its lease, units inside the allocation.
    assert.ok((await agent.getKey('tape-2', cached, 'protect')).material.length === 32);
    assert.equal((await agent.grantUnits('tape-1', 'r2', cached, 40n)).count, 40n);
    // Not covered: more units than are left (5 of 50), and a key never fetched.
    await assert.rejects(agent.grantUnits('tape-1', 'r3', cached, 20n), code('LEDGER_INSUFFICIENT'));
    await assert.rejects(agent.getKey('tape-1', uncached, 'protect'), (e: unknown) => ['AGENT_OFFLINE', 'NET_CONNECT_FAILED'].includes((e as { code: string }).code));
    assert.equal(agent.breaker.offline, true);
    await assert.rejects(agent.getKey('tape-1', uncached, 'protect'), code('AGENT_OFFLINE'));

    server = await startServer(dir, port);
    await new Promise((resolve) => setTimeout(resolve, 350)); // the breaker's cooldown
    assert.equal((await agent.grantUnits('tape-1', 'r3', cached, 20n)).count, 20n, 'refills resume');
    assert.ok((await agent.getKey('tape-1', uncached, 'protect')).material.length === 32, 'fills resume');
    const totals = await agent.ledger.totals(cached);
    assert.equal(totals.grantedToDevices, 65n);
    assert.ok(totals.allocatedFromUpstream >= 65n);
  } finally {
    await agent.close();
    await client.close();
    await stop(server);
  }
});
