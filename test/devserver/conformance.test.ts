/**
 * OASIS conformance as a server: the requests of the OASIS KMIP test cases replayed against the
 * development server over mutual TLS, each response compared with the expected one modulo what a
 * test case leaves to the server (test/helpers/conformance.ts). The test reports how many cases
 * pass out of how many were tried and why each other one fails; the cases of operations the
 * server implements must pass.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ensureDevPki } from '../../src/devserver/pki.ts';
import { DevKmipServer } from '../../src/devserver/server.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { replayTestCase, type ReplayResult } from '../helpers/conformance.ts';
import { CORPUS_DIR } from '../helpers/corpus.ts';
import { PushListener } from '../helpers/push-listener.ts';

/** Test cases whose operations the development server implements. */
const TRIED = /^(TC_51|TC_95|TC_121|TC_32|TC_141|TC_142|TC_31[1-5]|TC_41|SKFF|SKLC|OMOS|TC[_-]NP)/;
/** Of those, the ones that must pass (the others are reported with their reason). */
const REQUIRED = /^(TC_NP_[12]|TC-NP-1|TC_51|TC_95|TC_121|TC_32|TC_141|TC_142|TC_311|TC_313|TC_315|SKFF[_-]M[_-][1-8][_-]|SKLC[_-]M[_-][1-3][_-]|OMOS[_-]M[_-]1[_-])/;

const cases = readdirSync(CORPUS_DIR)
  .filter((v) => /^v1\.\d$/.test(v))
  .sort()
  .flatMap((v) => readdirSync(CORPUS_DIR + v).filter((f) => TRIED.test(f)).sort().map((f) => `${v}/${f}`));

describe('OASIS test cases replayed against the development server', () => {
  const results: ReplayResult[] = [];
  const pki = ensureDevPki(mkdtempSync(join(tmpdir(), 'kmip-edge-conformance-')));

  it('finds the test cases to try', () => {
    assert.ok(cases.length >= 100, `${cases.length} cases`);
    assert.ok(cases.filter((c) => REQUIRED.test(c.split('/')[1]!)).length >= 60);
  });

  it('replays every case, each against a fresh server (the cases assume an empty one)', async () => {
    for (const file of cases) {
      const identity = { ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) };
      const listener = new PushListener(identity);
      const listenerPort = await listener.listen();
      const minor = Number(/^v1\.(\d)/.exec(file)![1]);
      const server = new DevKmipServer(pki, { pushTo: [{ host: '127.0.0.1', port: listenerPort }], pushVersion: { major: 1, minor }, pushRetryMs: 20, pushMaxAttempts: 3 });
      const port = await server.listen(0);
      const pushes = { triggerPut: async (uid: string) => void (await server.put(uid)), next: () => listener.next() };
      const pool = new TlsPool({ host: '127.0.0.1', port, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }, { maxConnections: 1 });
      const channel = await pool.acquire(5000);
      try {
        results.push(await replayTestCase(CORPUS_DIR + file, (request) => channel.roundTrip(request, 10_000), pushes));
      } finally {
        pool.release(channel, false);
        await pool.close();
        await server.close();
        await listener.close();
      }
    }
  });

  it('passes every case of the operations it implements; reports the rest with the reason', (t) => {
    const passed = results.filter((r) => r.failure === undefined);
    t.diagnostic(`conformance: ${passed.length} of ${results.length} OASIS test cases pass`);
    const requiredFailures: string[] = [];
    for (const result of results) {
      if (result.failure === undefined) continue;
      const name = result.file.slice(CORPUS_DIR.length);
      t.diagnostic(`not passing: ${name}: ${result.failure}`);
      if (REQUIRED.test(name.split('/')[1]!)) requiredFailures.push(`${name}: ${result.failure}`);
    }
    assert.equal(results.length, cases.length);
    assert.deepEqual(requiredFailures, []);
  });
});
