/**
 * `kmip-edge bench kmip-endpoint` (CLI.md wave 2, issue #16): Gets of a cached key through the
 * local KMIP endpoint (the listener, the client registry and the edge KMIP service on a real
 * agent core), by 1 and 16 concurrent TLS clients each one request at a time — throughput, p50
 * and p99 — next to, in the same run and with the same clients, the same Gets sent straight to
 * the development server, and a bare TLS echo of the same bytes (mutual TLS, the same ciphers,
 * TTLV framing, the endpoint's response sent back as is): the floor any KMIP-over-TLS server
 * pays. Target (issue #16): p50 ≤ 1.25× the echo's.
 *
 * The servers run in this process, the clients in another (`bench kmip-endpoint-load`), by
 * default on CPUs of their own (./cpu-placement.ts), as in `bench devices`. Rounds alternate the
 * three, so that all meet the same moments of a noisy machine; the figures are each side's best
 * round (by throughput), the ratios the median of the rounds' own ratios.
 */
import { benchKeyAttributes } from './bench-key.ts';
import { spawn } from 'node:child_process';
import { benchChild } from './bench-children.ts';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { AgentCore } from '../agent/agent-core.ts';
import { ensureDevPki } from '../devserver/pki.ts';
import { DevKmipServer } from '../devserver/server.ts';
import { EdgeKmipService } from '../edge/edge-kmip-service.ts';
import { clientCertificate, ClientRegistry } from '../endpoint/client-registry.ts';
import { forEachBatchItem } from '../endpoint/endpoint-counts.ts';
import { KMIP_LISTENER_CIPHERS, KmipListener } from '../endpoint/kmip-listener.ts';
import { KmipEdgeError } from '../errors.ts';
import { buildRequestMessage } from '../kmip/message.ts';
import { payload } from '../kmip/payloads.ts';
import { ObjectType, Operation, ResultStatus } from '../kmip/tables.generated.ts';
import { createLogger, logDestination } from '../log.ts';
import { TlsPool } from '../net/tls-pool.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { TtlvFramer } from '../ttlv/framer.ts';
import { fromHex, toHex } from '../ttlv/hex.ts';
import { KmipClient } from '../upstream/client.ts';
import { X509Certificate } from 'node:crypto';
import { placement, type Placement, type PlacementKind } from './cpu-placement.ts';

/** What the load process is told (on stdin). */
export interface EndpointLoadConfig {
  port: number;
  ca: string;
  cert: string;
  key: string;
  clients: number;
  seconds: number;
  request: string;
}

export interface EndpointMeasurement {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** The TLS version and cipher the first connection negotiated. */
  tls: string;
  /** Every request made, warm-up included (to share out the server's CPU time). */
  requests: number;
  /** This process's CPU time (the server's) per request, filled in by the bench. */
  serverCpuUs?: number;
}

const percentile = (sorted: number[], p: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);

/** One TLS client, one request at a time: each call sends the request and resolves with the whole response. */
async function tlsClient(config: EndpointLoadConfig): Promise<{ socket: TLSSocket; exchange: () => Promise<Uint8Array> }> {
  const socket = connect({ host: '127.0.0.1', port: config.port, ca: config.ca, cert: config.cert, key: config.key, minVersion: 'TLSv1.2', rejectUnauthorized: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  socket.setNoDelay(true);
  const framer = new TtlvFramer();
  let waiting: ((message: Uint8Array) => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    for (const message of framer.push(chunk)) waiting?.(message);
  });
  const request = fromHex(config.request);
  return { socket, exchange: () => new Promise((resolve) => {
    waiting = resolve;
    socket.write(request);
  }) };
}

/** The load process: `clients` connections, each Get after Get for the time given, after a warm-up. */
export async function runEndpointLoad(config: EndpointLoadConfig): Promise<EndpointMeasurement> {
  const clients = await Promise.all(Array.from({ length: config.clients }, () => tlsClient(config)));
  const drive = async (seconds: number): Promise<{ latencies: number[]; elapsed: number }> => {
    const latencies: number[] = [];
    const started = performance.now();
    const deadline = started + seconds * 1000;
    await Promise.all(clients.map(async ({ exchange }) => {
      while (performance.now() < deadline) {
        const t = performance.now();
        const response = await exchange();
        latencies.push(performance.now() - t);
        let ok = false;
        forEachBatchItem(response, (_operation, status) => (ok = status === ResultStatus.Success));
        if (!ok) throw new Error('bench kmip-endpoint: a Get did not succeed');
      }
    }));
    return { latencies, elapsed: (performance.now() - started) / 1000 };
  };
  try {
    const warmUp = await drive(Math.min(1, config.seconds / 2)); // not counted: both sides compile their hot paths
    const { latencies, elapsed } = await drive(config.seconds);
    const requests = warmUp.latencies.length + latencies.length;
    latencies.sort((a, b) => a - b);
    const cipher = clients[0]!.socket.getCipher();
    return { requestsPerSec: Math.round(latencies.length / elapsed), p50Ms: Number(percentile(latencies, 50).toFixed(3)), p99Ms: Number(percentile(latencies, 99).toFixed(3)), tls: `${clients[0]!.socket.getProtocol()} ${cipher.name}`, requests };
  } finally {
    for (const { socket } of clients) socket.destroy();
  }
}

function loadProcess(config: EndpointLoadConfig, where: Placement): Promise<EndpointMeasurement> {
  const child = benchChild(spawn(...where.command('load', process.execPath, [...process.execArgv, process.argv[1]!, 'bench', 'kmip-endpoint-load']), { stdio: ['pipe', 'pipe', 'inherit'] }));
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stdin!.end(JSON.stringify(config));
  return new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(output) as EndpointMeasurement) : reject(new KmipEdgeError('BENCH_FAILED', `the kmip-endpoint load generator exited ${code}`)))));
}

/** The local client requests' audit events in the log file (one per request). */
function auditEvents(file: string): number {
  return readFileSync(file, 'utf8').split('\n').filter((line) => line.includes('"event":"kmip_client_request"')).length;
}

/** The floor: mutual TLS with the endpoint's settings, TTLV framing, and `response` sent back for each message. */
async function startEcho(identity: { ca: Buffer; cert: Buffer; key: Buffer }, response: Uint8Array): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer({ ...identity, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2', ciphers: KMIP_LISTENER_CIPHERS, honorCipherOrder: true }, (socket) => {
    socket.setNoDelay(true);
    const framer = new TtlvFramer();
    socket.on('data', (chunk: Buffer) => {
      for (let n = framer.push(chunk).length; n > 0; n--) socket.write(response);
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

export async function benchKmipEndpoint(options: { seconds: number; json: boolean; out: (text: string) => void; counts?: number[]; rounds?: number; placement?: PlacementKind }): Promise<void> {
  const { placement: where, note } = placement(options.placement ?? 'split');
  if (note) process.stderr.write(`bench kmip-endpoint: ${note}; running shared\n`);
  const unpin = where.pinSelf();
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-bench-kmip-endpoint-'));
  const pki = ensureDevPki(join(dir, 'kms'));
  const identity = { ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) };
  const server = new DevKmipServer(pki);
  const serverPort = await server.listen(0);
  const client = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port: serverPort, ...identity }), version: { major: 1, minor: 2 } });
  const agent = await AgentCore.open({ data: join(dir, 'agent'), client });
  const closers: (() => Promise<void>)[] = [];
  try {
    const uid = await client.create(ObjectType.SymmetricKey, benchKeyAttributes('bench-tape-key'));
    await client.activate(uid);
    // The load's client certificate (the dev PKI's: the dev server takes it too) is the registered local client.
    const registry = new ClientRegistry(agent.store);
    await registry.add('bench-library', clientCertificate(new X509Certificate(identity.cert)), { keys: [{ uniqueIdentifier: uid }], operations: ['Get'] });
    // The service logs as `run` has it log: at the default level, where every local client request
    // is an audit event (issue #16), JSON lines through the agent's log destination — here into a
    // file of the bench's, counted at the end, so the figures include what auditing costs.
    const auditFile = join(dir, 'audit.log');
    const auditFd = openSync(auditFile, 'a', 0o600);
    const log = createLogger({ level: 'info' }, await logDestination(auditFd, false));
    // What is still gathered is written before the file closes (not at exit, to a closed descriptor).
    closers.push(async () => {
      log.flush();
      closeSync(auditFd);
    });
    const service = new EdgeKmipService(agent, agent.store, log);
    const request = encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Get, payload: payload.get(uid) }]));
    // The key is cached (the benchmark measures cache hits), and the endpoint's answer is what the echo sends.
    const principal = (await registry.get('bench-library'))!;
    const { response } = await service.handle(principal, request, 'bench-warm-up');
    let cached = false;
    forEachBatchItem(response, (_operation, status) => (cached = status === ResultStatus.Success));
    if (!cached) throw new KmipEdgeError('BENCH_FAILED', 'bench kmip-endpoint: the Get through the service failed');
    // The dev PKI's client certificate is valid as a server certificate for 127.0.0.1 (CLI.md): the endpoint's identity here.
    const listener = await KmipListener.start({ host: '127.0.0.1', port: 0, ...identity, clients: registry, handler: service });
    closers.push(() => listener.close());
    const echo = await startEcho(identity, response);
    closers.push(echo.close);
    const targets = { endpoint: listener.port, direct: serverPort, echo: echo.port };
    let endpointRequests = 1; // the warm-up above
    const load = async (port: number, clients: number): Promise<EndpointMeasurement> => {
      const before = process.cpuUsage();
      const measured = await loadProcess({ port, clients, seconds: options.seconds, request: toHex(request), ca: identity.ca.toString(), cert: identity.cert.toString(), key: identity.key.toString() }, where);
      const cpu = process.cpuUsage(before);
      return { ...measured, serverCpuUs: Math.round((cpu.user + cpu.system) / Math.max(1, measured.requests)) };
    };
    if (!options.json) options.out(`kmip-endpoint: Get of a cached key (${response.length}-byte response) over mutual TLS, each audited in the log as \`run\` does, next to the dev server direct and a bare TLS echo of the same bytes\n`);
    for (const clients of options.counts ?? [1, 16]) {
      const rounds: Record<keyof typeof targets, EndpointMeasurement>[] = [];
      for (let round = 0; round < (options.rounds ?? 3); round++) {
        rounds.push({ endpoint: await load(targets.endpoint, clients), direct: await load(targets.direct, clients), echo: await load(targets.echo, clients) });
        endpointRequests += rounds.at(-1)!.endpoint.requests;
      }
      log.flush();
      const audited = auditEvents(auditFile);
      if (audited !== endpointRequests) throw new KmipEdgeError('BENCH_FAILED', `bench kmip-endpoint: ${audited} audit events logged for ${endpointRequests} requests`);
      const best = (side: keyof typeof targets) => rounds.map((r) => r[side]).reduce((a, b) => (b.requestsPerSec > a.requestsPerSec ? b : a));
      const [ours, direct, floor] = [best('endpoint'), best('direct'), best('echo')];
      const ratio = (a: number, b: number) => Number((a / b).toFixed(2));
      // The target is judged on the ratios of the same rounds (the same moments of the machine), their median.
      const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
      const p50VsEcho = ratio(median(rounds.map((r) => r.endpoint.p50Ms / r.echo.p50Ms)), 1);
      const p50VsDirect = ratio(median(rounds.map((r) => r.endpoint.p50Ms / r.direct.p50Ms)), 1);
      const result = {
        bench: 'kmip-endpoint', clients, placement: where.kind, requestsPerSec: ours.requestsPerSec, p50Ms: ours.p50Ms, p99Ms: ours.p99Ms,
        directRequestsPerSec: direct.requestsPerSec, directP50Ms: direct.p50Ms, directP99Ms: direct.p99Ms,
        echoRequestsPerSec: floor.requestsPerSec, echoP50Ms: floor.p50Ms, echoP99Ms: floor.p99Ms,
        p50VsEcho, p50VsDirect, target: 'p50 <= 1.25x echo (median of the per-round ratios)', meetsTarget: p50VsEcho <= 1.25,
        // CPU time of the server side (this process) per request, in the same best rounds.
        serverCpuUsPerRequest: { endpoint: ours.serverCpuUs, direct: direct.serverCpuUs, echo: floor.serverCpuUs },
        tls: { endpoint: ours.tls, direct: direct.tls, echo: floor.tls },
        auditEvents: audited,
        rounds: rounds.map((r) => ({ requestsPerSec: r.endpoint.requestsPerSec, p50Ms: r.endpoint.p50Ms, directP50Ms: r.direct.p50Ms, echoP50Ms: r.echo.p50Ms })),
      };
      if (options.json) options.out(JSON.stringify(result) + '\n');
      else options.out(`  ${String(clients).padStart(2)} clients: ${ours.requestsPerSec}/s p50 ${ours.p50Ms} ms p99 ${ours.p99Ms} ms  |  direct ${direct.requestsPerSec}/s p50 ${direct.p50Ms} ms  |  echo ${floor.requestsPerSec}/s p50 ${floor.p50Ms} ms p99 ${floor.p99Ms} ms  (p50 ${result.p50VsEcho}× echo, target ≤ 1.25×: ${result.meetsTarget ? 'met' : 'NOT met'}; ${result.p50VsDirect}× direct; best of ${rounds.length} rounds, ${where.kind}; server CPU µs/request ${ours.serverCpuUs} / direct ${direct.serverCpuUs} / echo ${floor.serverCpuUs})\n`);
    }
  } finally {
    for (const close of closers.reverse()) await close();
    await agent.close();
    await client.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
    unpin();
  }
}
