/**
 * `kmip-edge bench kmip-endpoint`, smoke-sized, from the built CLI: the processes it starts (the
 * dev server, the agent core with the endpoint, the echo, the TLS load process) run and it prints
 * one JSON line per client count with its same-run baselines. Checks the lines' shape, never the
 * timings (benchmarks print figures, tests do not judge them).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { createServer, type TLSSocket } from 'node:tls';
import { runEndpointLoad } from '../../src/bench/kmip-endpoint-bench.ts';
import { ensureDevPki } from '../../src/devserver/pki.ts';
import { ROOT } from '../helpers/cli.ts';

const BIN = join(ROOT, 'dist/kmip-edge.mjs');

it('bench kmip-endpoint --json: per client count, the endpoint next to the dev server direct and a TLS echo', () => {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build (npm test does)`);
  const run = spawnSync(process.execPath, [BIN, 'bench', 'kmip-endpoint', '--json', '--seconds', '0.3', '--rounds', '1', '--clients', '1,4'], { cwd: ROOT, encoding: 'utf8', timeout: 150_000 });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(lines.map((line) => [line.bench, line.clients]), [['kmip-endpoint', 1], ['kmip-endpoint', 4]]);
  for (const line of lines) {
    for (const field of ['requestsPerSec', 'p50Ms', 'p99Ms', 'directRequestsPerSec', 'directP50Ms', 'directP99Ms', 'echoRequestsPerSec', 'echoP50Ms', 'echoP99Ms', 'p50VsEcho', 'p50VsDirect']) {
      assert.ok(typeof line[field] === 'number' && (line[field] as number) > 0, `${field}: ${String(line[field])}`);
    }
    assert.equal(typeof line.meetsTarget, 'boolean');
    assert.equal((line.rounds as unknown[]).length, 1);
    for (const side of ['endpoint', 'direct', 'echo']) assert.match((line.tls as Record<string, string>)[side]!, /^TLSv1\.[23] /);
  }
});

it('bench kmip-endpoint: more clients than the endpoint allows one client by default (16) are measured, not left waiting', () => {
  const run = spawnSync(process.execPath, [BIN, 'bench', 'kmip-endpoint', '--json', '--seconds', '0.2', '--rounds', '1', '--clients', '20'], { cwd: ROOT, encoding: 'utf8', timeout: 150_000 });
  assert.equal(run.status, 0, run.stderr);
  const [line] = run.stdout.trim().split('\n').map((text) => JSON.parse(text) as Record<string, unknown>);
  assert.equal(line!.clients, 20);
  assert.ok((line!.requestsPerSec as number) > 0);
});

/** Runs the load against a TLS server whose connections `serve` handles; it must reject, and print no result. */
async function loadAgainst(serve: (socket: TLSSocket) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-load-'));
  const pki = ensureDevPki(dir);
  const identity = { ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) };
  const server = createServer({ ...identity, requestCert: true, rejectUnauthorized: true }, serve);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const lines: string[] = [];
    await assert.rejects(runEndpointLoad({ ports: { endpoint: port, direct: port, echo: port }, clients: 2, seconds: 0.2, rounds: 1, request: '4200780100000000', ca: identity.ca.toString(), cert: identity.cert.toString(), key: identity.key.toString() }, (line) => lines.push(line)), /was closed before the answer|failed: .* before the answer/);
    assert.ok(!lines.some((line) => line.includes('"result"')));
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

it('the load process fails, rather than waits for ever, when a server closes its connections at their first request', () => loadAgainst((socket) => socket.once('data', () => socket.destroy())));

// As the endpoint does with a connection over a client's limit: before a request is sent, a request
// to a closed connection waited for an answer that could not come, and with nothing left to wait
// for the load process ended, exit code 0, without a result.
it('the load process fails when a server closes its connections before the first request', () => loadAgainst((socket) => socket.destroy()));
