/**
 * `kmip-edge bench footprint` (issue #15): what the agent costs a gateway, as the package runs it —
 * `kmip-edge run` with its embedded broker, the development server upstream, all real processes.
 * - cold start: from spawning `kmip-edge run` to its ready line, with a data folder already holding
 *   `keys` cached keys and `devices` provisioned devices (median of `rounds` starts) — baselines in
 *   the same run: bare `node -e 0`, and `kmip-edge --version` (loading and compiling the bundle);
 * - resident memory (VmRSS) once every device has fetched its share of the keys through the agent,
 *   so all `keys` are in the agent's memory cache, and the agent has been quiet for
 *   SETTLE_MS (long enough for src/memory-settler.ts to give the burst's heap back) — beside it in
 *   the same run: the same agent just after its ready line (nothing fetched yet), right at the end
 *   of the fill, and its peak (VmHWM);
 * - the bundle's size in bytes.
 * The agent runs with --metrics, so the JS heap and external memory are reported beside the RSS,
 * and, like the two baselines, with the environment the package's systemd unit gives it
 * (deploy/kmip-edge.service `Environment=` lines, PATH and LANG): the agent as a gateway runs it.
 * Targets: cold start <= 300 ms, RSS <= 80 MB, bundle <= 1 MB. One JSON line with --json.
 */
import { benchKeyAttributes } from './bench-key.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { benchChild } from './bench-children.ts';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { dataDir } from '../agent/data-dir.ts';
import { DeviceClient, memoryCounters } from '../devices/device-client.ts';
import type { Suite } from '../devices/frame.ts';
import { MqttDevice } from '../devices/mqtt-device.ts';
import { connectMqtt } from '../devices/mqtt-transport.ts';
import { DeviceRegistry } from '../devices/registry.ts';
import { KmipEdgeError } from '../errors.ts';
import { buildRequestMessage } from '../kmip/message.ts';
import { payload } from '../kmip/payloads.ts';
import { ObjectType, Operation, ResultStatus } from '../kmip/tables.generated.ts';
import { TlsPool } from '../net/tls-pool.ts';
import { LevelStore } from '../store/kv-store.ts';
import { MasterKey } from '../store/master-key.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { KmipClient } from '../upstream/client.ts';
import { packageRoot } from '../cli/package-root.ts';
import { freePort } from './free-port.ts';

export interface FootprintOptions {
  keys: number;
  devices: number;
  rounds: number;
  json: boolean;
  out: (text: string) => void;
}

export const FOOTPRINT_TARGETS = { coldStartMs: 300, rssMb: 80, bundleBytes: 1_000_000 } as const;
/** Concurrent creates on the development server, and devices fetching at once. */
const CREATE_CONCURRENCY = 16;
const FETCH_CONCURRENCY = 50;
/** Two of the memory settler's 5-second checks, and a margin. */
const SETTLE_MS = 12_000;

/** The `Environment=NAME=VALUE` settings of the package's systemd unit. */
export function unitEnvironment(unitText: string): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const match of unitText.matchAll(/^Environment=(\w+)=(\S*)\s*$/gm)) settings[match[1]!] = match[2]!;
  return settings;
}

/**
 * As systemd starts a service (systemd.exec(5), "Environment Variables in Spawned Processes"):
 * the unit's settings, PATH and the system locale's LANG (this caller's stands for it), nothing
 * else of the caller's environment — a shell's NODE_OPTIONS or NODE_EXTRA_CA_CERTS would change
 * every figure (the latter, set on the machine this was measured on, doubles bare node's start).
 */
export function serviceEnvironment(unitSettings: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', ...(process.env.LANG !== undefined && { LANG: process.env.LANG }), ...unitSettings };
}

/** This CLI as a child process (the bundle, or src/cli/main.ts under tsx). */
function cli(args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  return benchChild(spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env }));
}

function firstLine(child: ChildProcess, what: string, timeoutMs = 120_000): Promise<string> {
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new KmipEdgeError('BENCH_FAILED', `${what} printed nothing within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    createInterface({ input: child.stdout! }).once('line', (line) => (clearTimeout(timer), resolve(line)));
    child.once('exit', (code) => (clearTimeout(timer), reject(new KmipEdgeError('BENCH_FAILED', `${what} exited ${code}: ${stderr}`))));
  });
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', () => (clearTimeout(kill), resolve()));
    child.kill('SIGTERM');
  });
}

/** Milliseconds from spawning `args` until it prints its first line (or exits, for --version). */
async function startupMs(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const started = performance.now();
  const child = benchChild(spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'], env }));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new KmipEdgeError('BENCH_FAILED', `${command} ${args.join(' ')} exited ${code}`))));
  });
  const ms = performance.now() - started;
  await stop(child);
  return ms;
}

/** VmRSS and VmHWM of `pid` in MB (/proc/PID/status, kB). */
function memoryMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mb = (value: number) => Number(value.toFixed(1));

/** Runs `jobs` with at most `concurrency` at once. */
async function pooled<T>(count: number, concurrency: number, job: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      const index = next++;
      results[index] = await job(index);
    }
  }));
  return results;
}

/** The bundle beside the command this process runs (dist/kmip-edge.mjs), or dist/kmip-edge.cjs when it runs from src/ (npm run build first). */
function bundleBytes(): number {
  const running = process.argv[1]!;
  return statSync(running.endsWith('.mjs') ? join(dirname(running), 'kmip-edge.cjs') : join(packageRoot(), 'dist', 'kmip-edge.cjs')).size;
}

/** What V8 did with the bundle's code cache in this process (scripts/launcher.mjs); the agents it starts run the same Node and bundle. */
function codeCache(): string {
  return (globalThis as Record<symbol, string | undefined>)[Symbol.for('kmip-edge.codeCache')] ?? 'none (run from src/)';
}

export async function benchFootprint(options: FootprintOptions): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-bench-footprint-'));
  const children: ChildProcess[] = [];
  const progress = (text: string) => process.stderr.write(`bench footprint: ${text}\n`);
  try {
    const server = cli(['dev-server', '--port', '0', '--dir', join(dir, 'kms')]);
    children.push(server);
    const pki = JSON.parse(await firstLine(server, 'the dev server')) as { port: number; ca: string; clientCert: string; clientKey: string };

    progress(`creating ${options.keys} keys on the development server`);
    const client = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port: pki.port, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }), version: { major: 1, minor: 2 } });
    const uids = await pooled(options.keys, CREATE_CONCURRENCY, async (i) => {
      const uid = await client.create(ObjectType.SymmetricKey, benchKeyAttributes(`footprint-${i}`));
      await client.activate(uid);
      return uid;
    });
    await client.close();

    // The devices, registered before the agent starts (as `kmip-edge device add` does); device i
    // may use keys i, i + devices, i + 2·devices, …: every key belongs to one device.
    const data = join(dir, 'agent');
    const paths = dataDir(data, true);
    const store = await LevelStore.open(paths.store);
    const registry = new DeviceRegistry(store, MasterKey.load(paths.masterKey));
    const shares = Array.from({ length: options.devices }, (_, d) => uids.filter((_, k) => k % options.devices === d));
    const devices: { id: string; key: Uint8Array; suite: Suite }[] = [];
    for (let d = 0; d < options.devices; d++) {
      const device = await registry.add(`footprint-${d}`, { keys: shares[d]!.map((uniqueIdentifier) => ({ uniqueIdentifier })), limits: { requestsPerSecond: 1_000_000 } });
      devices.push({ id: device.id, key: device.key, suite: device.suite });
    }
    await store.close();

    const brokerPort = await freePort();
    const runArgs = ['run', '--data', data, '--upstream', `127.0.0.1:${pki.port}`, '--upstream-ca', pki.ca, '--upstream-cert', pki.clientCert, '--upstream-key', pki.clientKey, '--embedded-broker', `127.0.0.1:${brokerPort}`, '--metrics', '127.0.0.1:0', '--log-level', 'error'];
    // The unit beside the bundle (a checkout, the npm tarball), or the one the Debian package installed.
    const unit = [join(packageRoot(), 'deploy', 'kmip-edge.service'), '/lib/systemd/system/kmip-edge.service'].find((path) => existsSync(path));
    const environment = unit === undefined ? {} : unitEnvironment(readFileSync(unit, 'utf8'));
    const serviceEnv = serviceEnvironment(environment);
    const nodeStart: number[] = [];
    const version: number[] = [];
    const coldStart: number[] = [];
    let agent: ChildProcess | undefined;
    let metrics = '';
    for (let round = 0; round < options.rounds; round++) {
      nodeStart.push(await startupMs(process.execPath, ['-e', 'process.stdout.write("x")'], serviceEnv));
      version.push(await startupMs(process.execPath, [...process.execArgv, process.argv[1]!, '--version'], serviceEnv));
      const started = performance.now();
      agent = cli(runArgs, serviceEnv);
      children.push(agent);
      const ready = JSON.parse(await firstLine(agent, 'the agent')) as { metrics: string };
      coldStart.push(performance.now() - started);
      metrics = ready.metrics;
      if (round < options.rounds - 1) await stop(agent);
    }
    const idle = memoryMb(agent!.pid!);

    progress(`${options.devices} devices fetching their ${options.keys} keys through the agent`);
    const mqtt = await connectMqtt({ host: '127.0.0.1', port: brokerPort, clientId: `footprint-devices-${process.pid}` });
    mqtt.setMaxListeners(0); // one listener per device on this shared connection
    try {
      let fetched = 0;
      await pooled(devices.length, FETCH_CONCURRENCY, async (d) => {
        const { id, key, suite } = devices[d]!;
        const requester = await MqttDevice.attach(mqtt, new DeviceClient(id, key, suite, memoryCounters()));
        for (const uid of shares[d]!) {
          const response = await requester.request(encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Get, payload: payload.get(uid) }])), { resendMs: 5000 });
          if (response.batchItems[0]?.resultStatus !== ResultStatus.Success) throw new KmipEdgeError('BENCH_FAILED', `device ${id}: Get ${uid} failed`);
          fetched++;
        }
      });
      if (fetched !== options.keys) throw new KmipEdgeError('BENCH_FAILED', `${fetched} keys fetched of ${options.keys}`);
    } finally {
      await mqtt.endAsync(true);
    }
    const filled = memoryMb(agent!.pid!);
    progress(`quiet for ${SETTLE_MS / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const loaded = memoryMb(agent!.pid!);
    // Where the memory is: the JS heap and the memory outside it (buffers, LevelDB), from /metrics.
    const exposition = await (await fetch(`http://${metrics}/metrics`)).text();
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(exposition)?.[1] ?? NaN) / 2 ** 20;

    const result = {
      bench: 'footprint',
      coldStartMs: Math.round(median(coldStart)),
      rssMb: mb(loaded.rss),
      keys: options.keys,
      devices: options.devices,
      bundleBytes: bundleBytes(),
      codeCache: codeCache(),
      // the same run's baselines and detail
      peakRssMb: mb(loaded.peak),
      idleRssMb: mb(idle.rss),
      filledRssMb: mb(filled.rss),
      settleMs: SETTLE_MS,
      environment,
      heapUsedMb: mb(gauge('nodejs_heap_size_used_bytes')),
      heapTotalMb: mb(gauge('nodejs_heap_size_total_bytes')),
      externalMb: mb(gauge('nodejs_external_memory_bytes')),
      nodeStartMs: Math.round(median(nodeStart)),
      versionMs: Math.round(median(version)),
      rounds: options.rounds,
      targets: FOOTPRINT_TARGETS,
    };
    if (options.json) options.out(JSON.stringify(result) + '\n');
    else {
      const mark = (ok: boolean) => (ok ? 'within target' : 'OVER TARGET');
      options.out(`footprint: kmip-edge run (embedded broker), ${options.keys} cached keys, ${options.devices} devices\n`);
      options.out(`  cold start to ready  ${String(result.coldStartMs).padStart(6)} ms   (median of ${options.rounds}; bare node ${result.nodeStartMs} ms, kmip-edge --version ${result.versionMs} ms) ${mark(result.coldStartMs <= FOOTPRINT_TARGETS.coldStartMs)} ${FOOTPRINT_TARGETS.coldStartMs} ms\n`);
      options.out(`  resident memory      ${String(result.rssMb).padStart(6)} MB   (quiet ${SETTLE_MS / 1000} s after the fill; peak ${result.peakRssMb} MB; JS heap ${result.heapUsedMb} of ${result.heapTotalMb} MB, external ${result.externalMb} MB; just after start, nothing fetched: ${result.idleRssMb} MB; right after the fill: ${result.filledRssMb} MB; environment ${JSON.stringify(environment)}) ${mark(result.rssMb <= FOOTPRINT_TARGETS.rssMb)} ${FOOTPRINT_TARGETS.rssMb} MB\n`);
      options.out(`  bundle               ${String(result.bundleBytes).padStart(6)} bytes ${mark(result.bundleBytes <= FOOTPRINT_TARGETS.bundleBytes)} ${FOOTPRINT_TARGETS.bundleBytes} (V8 code cache: ${result.codeCache})\n`);
    }
  } finally {
    for (const child of children.reverse()) await stop(child);
    rmSync(dir, { recursive: true, force: true });
  }
}
