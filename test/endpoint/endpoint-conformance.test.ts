/**
 * The OASIS KMIP test cases replayed against the local KMIP endpoint (issue #16), as the
 * development server's conformance test replays them against it (test/helpers/conformance.ts):
 * each case through a fresh agent — `KmipListener` over mutual TLS, the client registry, the edge
 * KMIP service on a LevelDB agent core — whose upstream is a fresh development server, the client
 * registered with every operation the endpoint serves (the keys a case makes are its creator's).
 * Reports how many pass of how many were tried and the reason of each other one; the cases that
 * passed when it was written must pass (a regression fails).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { ensureDevPki } from '../../src/devserver/pki.ts';
import { DevKmipServer } from '../../src/devserver/server.ts';
import { EdgeKmipService } from '../../src/edge/edge-kmip-service.ts';
import { CLIENT_OPERATIONS, clientCertificate, ClientRegistry } from '../../src/endpoint/client-registry.ts';
import { KmipListener } from '../../src/endpoint/kmip-listener.ts';
import { silentLogger } from '../../src/log.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { replayTestCase, type ReplayResult } from '../helpers/conformance.ts';
import { CORPUS_DIR } from '../helpers/corpus.ts';

/** The cases of operations the endpoint serves (the development server's set, without the server-to-client pushes). */
const TRIED = /^(TC_51|TC_95|TC_121|TC_32|TC_141|TC_142|TC_31[1-5]|TC_41|SKFF|SKLC|OMOS)/;
/**
 * Not passing when this test was written, reported with their reason each run; every other case
 * tried must pass. Most are the development server's limits behind the agent (Register of key
 * pairs and certificates, algorithms other than AES and HMAC-SHA256, Re-key), the rest the edge
 * service's answers (attribute order in Get Attributes, asynchronous Locate, Discover Versions at
 * 1.4 offering 1.4).
 */
const KNOWN_NOT_PASSING = /^(SKFF[_-]M[_-](9|1[0-2])[_-]|SKFF[_-]O[_-][1-6][_-]|SKLC[_-]O[_-]1[_-]|TC_312_|TC_314_|TC_32_|TC_41_|TC_95_|OMOS-O-1-14)/;

const cases = readdirSync(CORPUS_DIR)
  .filter((v) => /^v1\.\d$/.test(v))
  .sort()
  .flatMap((v) => readdirSync(CORPUS_DIR + v).filter((f) => TRIED.test(f)).sort().map((f) => `${v}/${f}`));

describe('OASIS test cases replayed against the local KMIP endpoint', () => {
  const results: ReplayResult[] = [];
  const pki = ensureDevPki(mkdtempSync(join(tmpdir(), 'kmip-edge-endpoint-conformance-')));
  const identity = { ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) };

  it('replays every case, each through a fresh agent and key server (the cases assume empty ones)', async () => {
    assert.ok(cases.length >= 100, `${cases.length} cases`);
    for (const file of cases) {
      const server = new DevKmipServer(pki);
      const upstreamPort = await server.listen(0);
      const upstream = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port: upstreamPort, ...identity }), version: { major: 1, minor: 4 } });
      const data = mkdtempSync(join(tmpdir(), 'kmip-edge-endpoint-conformance-agent-'));
      const agent = await AgentCore.open({ data, client: upstream });
      const registry = new ClientRegistry(agent.store);
      await registry.add('oasis', clientCertificate(new X509Certificate(identity.cert)), { operations: [...CLIENT_OPERATIONS] });
      const listener = await KmipListener.start({ host: '127.0.0.1', port: 0, ...identity, clients: registry, handler: new EdgeKmipService(agent, agent.store, silentLogger) });
      const pool = new TlsPool({ host: '127.0.0.1', port: listener.port, ...identity }, { maxConnections: 1 });
      const channel = await pool.acquire(5000);
      try {
        results.push(await replayTestCase(CORPUS_DIR + file, (request) => channel.roundTrip(request, 10_000)));
      } finally {
        pool.release(channel, false);
        await pool.close();
        await listener.close();
        await agent.close();
        await upstream.close();
        await server.close();
        rmSync(data, { recursive: true, force: true });
      }
    }
  });

  it('reports how many pass and why each other one does not', (t) => {
    const passed = results.filter((r) => r.failure === undefined);
    t.diagnostic(`endpoint conformance: ${passed.length} of ${results.length} OASIS test cases pass`);
    const requiredFailures: string[] = [];
    for (const result of results) {
      const name = result.file.slice(CORPUS_DIR.length);
      if (result.failure === undefined) continue;
      t.diagnostic(`not passing: ${name}: ${result.failure}`);
      if (!KNOWN_NOT_PASSING.test(name.split('/')[1]!)) requiredFailures.push(`${name}: ${result.failure}`);
    }
    assert.equal(results.length, cases.length);
    assert.deepEqual(requiredFailures, []);
  });
});
