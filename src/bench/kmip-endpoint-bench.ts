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
 * default on CPUs of their own (./cpu-placement.ts), as in `bench devices`. One load process holds
 * connections to all three and alternates between them in short rounds (`--rounds`, default 10,
 * sharing out `--seconds` of measured time per side, default 3), so that all three meet the same
 * moments of a noisy machine: on a shared 2-CPU VM, the echo's own p50 moved 2× between runs a
 * minute apart, and rounds of a whole process each (1.5 s) still caught such moves between sides.
 * The figures pool each side's rounds; the ratios are the median of the rounds' own ratios.
 */
import { benchKeyAttributes } from './bench-key.ts';
import { spawn } from 'node:child_process';
import { benchChild } from './bench-children.ts';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
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

/** The three servers a round measures, in the order of the first round. */
export const SIDES = ['endpoint', 'direct', 'echo'] as const;
export type Side = (typeof SIDES)[number];

/** What the load process is told (on stdin). */
export interface EndpointLoadConfig {
  ports: Record<Side, number>;
  ca: string;
  cert: string;
  key: string;
  clients: number;
  /** Measured time per side, shared out over the rounds. */
  seconds: number;
  rounds: number;
  request: string;
}

export interface EndpointMeasurement {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** The TLS version and cipher the first connection negotiated. */
  tls: string;
  /** Every request made, warm-up included (each one is audited). */
  requests: number;
  /** The requests of the measured rounds (the server's CPU time of those rounds is shared out over them). */
  measuredRequests: number;
  /** This process's CPU time (the server's) per request, filled in by the bench. */
  serverCpuUs?: number;
}

/** The load process's answer: each side over all its rounds, and each round's p50 per side. */
export interface EndpointLoadResult {
  sides: Record<Side, EndpointMeasurement>;
  rounds: Record<Side, number>[];
}

/**
 * A line of the load process on stdout: a mark when it starts driving a side (or stops: null), so
 * that the bench shares its own CPU time out by side; the result last.
 */
export type EndpointLoadLine = { mark: Side | null } | { result: EndpointLoadResult };

const percentile = (sorted: number[], p: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);
const ms3 = (value: number) => Number(value.toFixed(3));

/** One TLS client, one request at a time: each call sends the request and resolves with the whole response. */
async function tlsClient(config: EndpointLoadConfig, port: number): Promise<{ socket: TLSSocket; exchange: () => Promise<Uint8Array> }> {
  const socket = connect({ host: '127.0.0.1', port, ca: config.ca, cert: config.cert, key: config.key, minVersion: 'TLSv1.2', rejectUnauthorized: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  socket.setNoDelay(true);
  const framer = new TtlvFramer();
  let waiting: { resolve: (message: Uint8Array) => void; reject: (error: Error) => void } | undefined;
  socket.on('data', (chunk: Buffer) => {
    for (const message of framer.push(chunk)) waiting?.resolve(message);
  });
  // A connection the server closes (a limit, a refusal) fails the load rather than leaving it
  // waiting for ever — also when it closed before the request: a request to a closed connection
  // would wait for an answer that cannot come, and the load end with nothing to say.
  let closed: Error | undefined;
  const gone = (error?: Error) => {
    closed ??= new Error(`bench kmip-endpoint: the connection to port ${port} ${error ? `failed: ${error.message}` : 'was closed'} before the answer`);
    waiting?.reject(closed);
  };
  socket.on('error', gone);
  socket.on('close', () => gone());
  const request = fromHex(config.request);
  return { socket, exchange: () => new Promise((resolve, reject) => {
    if (closed) return reject(closed);
    waiting = { resolve, reject };
    socket.write(request);
  }) };
}

/**
 * The load process: `clients` connections to each side, open all along. After a warm-up of each
 * side (both ends compile their hot paths), `rounds` rounds, each driving every side in turn for
 * its share of the time — the order rotated from round to round — so that the three meet the same
 * moments of a noisy machine, a few hundred milliseconds apart rather than seconds.
 */
export async function runEndpointLoad(config: EndpointLoadConfig, out: (line: string) => void): Promise<void> {
  const say = (line: EndpointLoadLine) => out(JSON.stringify(line) + '\n');
  const connections = {} as Record<Side, Awaited<ReturnType<typeof tlsClient>>[]>;
  for (const side of SIDES) connections[side] = await Promise.all(Array.from({ length: config.clients }, () => tlsClient(config, config.ports[side])));
  /** Drives `side` for `ms`; the server's CPU time counts to it when `measured` (not in the warm-up, which compiles code the other sides then use). */
  const drive = async (side: Side, ms: number, measured: boolean): Promise<{ latencies: number[]; elapsed: number }> => {
    say({ mark: measured ? side : null });
    const latencies: number[] = [];
    const started = performance.now();
    const deadline = started + ms;
    await Promise.all(connections[side].map(async ({ exchange }) => {
      while (performance.now() < deadline) {
        const t = performance.now();
        const response = await exchange();
        latencies.push(performance.now() - t);
        let ok = false;
        forEachBatchItem(response, (_operation, status) => (ok = status === ResultStatus.Success));
        if (!ok) throw new Error(`bench kmip-endpoint: a Get to the ${side} did not succeed`);
      }
    }));
    return { latencies, elapsed: (performance.now() - started) / 1000 };
  };
  try {
    const requests = { endpoint: 0, direct: 0, echo: 0 };
    const slices = { endpoint: [] as number[][], direct: [] as number[][], echo: [] as number[][] };
    const elapsed = { endpoint: 0, direct: 0, echo: 0 };
    for (const side of SIDES) requests[side] += (await drive(side, Math.min(500, (config.seconds * 1000) / 2), false)).latencies.length; // warm-up, not counted
    const rounds: Record<Side, number>[] = [];
    const sliceMs = (config.seconds * 1000) / config.rounds;
    for (let round = 0; round < config.rounds; round++) {
      const p50 = { endpoint: 0, direct: 0, echo: 0 };
      for (let i = 0; i < SIDES.length; i++) {
        const side = SIDES[(round + i) % SIDES.length]!;
        const slice = await drive(side, sliceMs, true);
        requests[side] += slice.latencies.length;
        elapsed[side] += slice.elapsed;
        slice.latencies.sort((a, b) => a - b);
        slices[side].push(slice.latencies);
        p50[side] = ms3(percentile(slice.latencies, 50));
      }
      rounds.push(p50);
    }
    say({ mark: null });
    const sides = {} as Record<Side, EndpointMeasurement>;
    for (const side of SIDES) {
      const latencies = slices[side].flat().sort((a, b) => a - b);
      const socket = connections[side][0]!.socket;
      sides[side] = { requestsPerSec: Math.round(latencies.length / elapsed[side]), p50Ms: ms3(percentile(latencies, 50)), p99Ms: ms3(percentile(latencies, 99)), tls: `${socket.getProtocol()} ${socket.getCipher().name}`, requests: requests[side], measuredRequests: latencies.length };
    }
    say({ result: { sides, rounds } });
  } finally {
    for (const side of SIDES) for (const { socket } of connections[side]) socket.destroy();
  }
}

/**
 * Runs the load process; this process's CPU time (the servers') is shared out by side at the
 * marks the load process prints as it goes from one side to the next.
 */
function loadProcess(config: EndpointLoadConfig, where: Placement): Promise<{ result: EndpointLoadResult; cpuUs: Record<Side, number> }> {
  const child = benchChild(spawn(...where.command('load', process.execPath, [...process.execArgv, process.argv[1]!, 'bench', 'kmip-endpoint-load']), { stdio: ['pipe', 'pipe', 'inherit'] }));
  const cpuUs = { endpoint: 0, direct: 0, echo: 0 };
  let current: Side | null = null;
  let since = process.cpuUsage();
  let result: EndpointLoadResult | undefined;
  let garbled: string | undefined;
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: EndpointLoadLine;
    try {
      line = JSON.parse(text) as EndpointLoadLine;
    } catch {
      garbled ??= text.slice(0, 200); // said when the load process ends, never thrown in this callback
      return;
    }
    if ('result' in line) return void (result = line.result);
    const now = process.cpuUsage();
    if (current) cpuUs[current] += now.user - since.user + now.system - since.system;
    [current, since] = [line.mark, now];
  });
  child.stdin!.end(JSON.stringify(config));
  return new Promise((resolve, reject) => {
    child.once('error', (error) => reject(new KmipEdgeError('BENCH_FAILED', `the kmip-endpoint load generator did not start: ${error.message}`)));
    child.once('close', (code) => {
      if (code === 0 && result && garbled === undefined) resolve({ result, cpuUs });
      else reject(new KmipEdgeError('BENCH_FAILED', garbled === undefined ? `the kmip-endpoint load generator exited ${code}` : `the kmip-endpoint load generator printed a line that is not its JSON: ${garbled}`));
    });
  });
}

/** The local client requests' audit events in the log file (one per request). */
function auditEvents(file: string): number {
  return readFileSync(file, 'utf8').split('\n').filter((line) => line.includes('"event":"kmip_client_request"')).length;
}

/** The floor: mutual TLS with the endpoint's settings, TTLV framing, and `response` sent back for each message. */
async function startEcho(identity: { ca: Buffer; cert: Buffer; key: Buffer }, response: Uint8Array): Promise<{ port: number; close: () => Promise<void> }> {
  const bytes = Buffer.from(response.buffer, response.byteOffset, response.length); // what a socket writes as it is (a Uint8Array is made a Buffer per write)
  const server = createServer({ ...identity, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2', ciphers: KMIP_LISTENER_CIPHERS, honorCipherOrder: true }, (socket) => {
    socket.setNoDelay(true);
    const framer = new TtlvFramer();
    socket.on('data', (chunk: Buffer) => {
      for (let n = framer.push(chunk).length; n > 0; n--) socket.write(bytes);
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
    // Its connection limits sized for the load (they are tested in test/endpoint; here they would only cap --clients).
    const counts = options.counts ?? [1, 16];
    const most = Math.max(...counts);
    const listener = await KmipListener.start({ host: '127.0.0.1', port: 0, ...identity, clients: registry, handler: service, maxConnectionsPerClient: Math.max(16, most), maxConnections: Math.max(64, most) });
    closers.push(() => listener.close());
    const echo = await startEcho(identity, response);
    closers.push(echo.close);
    const ports: Record<Side, number> = { endpoint: listener.port, direct: serverPort, echo: echo.port };
    let endpointRequests = 1; // the warm-up above
    if (!options.json) options.out(`kmip-endpoint: Get of a cached key (${response.length}-byte response) over mutual TLS, each audited in the log as \`run\` does, next to the dev server direct and a bare TLS echo of the same bytes, in alternated rounds\n`);
    for (const clients of counts) {
      const rounds = options.rounds ?? 10;
      const { result, cpuUs } = await loadProcess({ ports, clients, seconds: options.seconds, rounds, request: toHex(request), ca: identity.ca.toString(), cert: identity.cert.toString(), key: identity.key.toString() }, where);
      const sides = result.sides;
      for (const side of SIDES) sides[side].serverCpuUs = Math.round(cpuUs[side] / Math.max(1, sides[side].measuredRequests));
      endpointRequests += sides.endpoint.requests;
      log.flush();
      const audited = auditEvents(auditFile);
      if (audited !== endpointRequests) throw new KmipEdgeError('BENCH_FAILED', `bench kmip-endpoint: ${audited} audit events logged for ${endpointRequests} requests`);
      const [ours, direct, floor] = [sides.endpoint, sides.direct, sides.echo];
      const ratio = (value: number) => Number(value.toFixed(2));
      // The target is judged on the ratios within each round (the same moments of the machine), their median.
      const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
      const p50VsEcho = ratio(median(result.rounds.map((r) => r.endpoint / r.echo)));
      const p50VsDirect = ratio(median(result.rounds.map((r) => r.endpoint / r.direct)));
      const summary = {
        bench: 'kmip-endpoint', clients, placement: where.kind, requestsPerSec: ours.requestsPerSec, p50Ms: ours.p50Ms, p99Ms: ours.p99Ms,
        directRequestsPerSec: direct.requestsPerSec, directP50Ms: direct.p50Ms, directP99Ms: direct.p99Ms,
        echoRequestsPerSec: floor.requestsPerSec, echoP50Ms: floor.p50Ms, echoP99Ms: floor.p99Ms,
        p50VsEcho, p50VsDirect, target: 'p50 <= 1.25x echo (median of the per-round ratios)', meetsTarget: p50VsEcho <= 1.25,
        // CPU time of the server side (this process) per request of the measured rounds, side by side.
        serverCpuUsPerRequest: { endpoint: ours.serverCpuUs, direct: direct.serverCpuUs, echo: floor.serverCpuUs },
        tls: { endpoint: ours.tls, direct: direct.tls, echo: floor.tls },
        auditEvents: audited,
        rounds: result.rounds.map((r) => ({ p50Ms: r.endpoint, directP50Ms: r.direct, echoP50Ms: r.echo })),
      };
      if (options.json) options.out(JSON.stringify(summary) + '\n');
      else options.out(`  ${String(clients).padStart(2)} clients: ${ours.requestsPerSec}/s p50 ${ours.p50Ms} ms p99 ${ours.p99Ms} ms  |  direct ${direct.requestsPerSec}/s p50 ${direct.p50Ms} ms  |  echo ${floor.requestsPerSec}/s p50 ${floor.p50Ms} ms p99 ${floor.p99Ms} ms  (p50 ${p50VsEcho}× echo, target ≤ 1.25×: ${summary.meetsTarget ? 'met' : 'NOT met'}; ${p50VsDirect}× direct; ${rounds} alternated rounds, ${where.kind}; server CPU µs/request ${ours.serverCpuUs} / direct ${direct.serverCpuUs} / echo ${floor.serverCpuUs})\n`);
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
