/**
 * `kmip-edge bench outage`: a long upstream outage, with real processes where a user meets them —
 * the development KMIP server (`kmip-edge dev-server`), Mosquitto, the agent (`kmip-edge run`) and
 * N simulated devices in a process of their own (./outage-load.ts). Between the agent and the
 * server a relay (./cut-proxy.ts) is cut for `outageSeconds` — refused or blackholed — and restored.
 *
 * The devices make a steady mix of requests throughout: Gets of a key the agent has cached, Usage
 * Allocations of one unit, and Gets of keys the agent never cached. Phases: a short warm-up (not
 * reported), "before" (the upstream up: the baseline), "outage", "after". Reported, each next to
 * its baseline from the same run:
 * - cached Gets answered during the outage and their errors (target 0), p50/p99 — baseline: the
 *   same Gets before the outage;
 * - allocations answered from the units already allocated, and when those ran out; the rest
 *   refused (the agent cannot debit units the upstream never granted), with p50/p99 — baseline:
 *   the same allocations before;
 * - Gets of keys never cached, refused: how fast (p50/p99) — baseline: cached Gets in the same
 *   outage phase (a refusal should cost what a cache hit costs, not an upstream timeout) and the
 *   same kind of Get before the outage (fetched from the upstream);
 * - from the upstream's return until refills resume (the first allocation answered after it, when
 *   they were refused at the end of the outage) and until cache fills resume — next to the bound
 *   the agent's back-off sets: the circuit breaker's cool-down plus the connection pool's longest
 *   reconnect back-off (src/agent/circuit-breaker.ts, src/net/tls-pool.ts);
 * - the units the ledger debited against the units the devices received.
 */
import { benchKeyAttributes } from './bench-key.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { benchChild } from './bench-children.ts';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CircuitBreaker } from '../agent/circuit-breaker.ts';
import { dataDir } from '../agent/data-dir.ts';
import { Ledger } from '../agent/ledger.ts';
import { DeviceRegistry } from '../devices/registry.ts';
import { KmipEdgeError } from '../errors.ts';
import { ObjectType } from '../kmip/tables.generated.ts';
import { TlsPool } from '../net/tls-pool.ts';
import { LevelStore } from '../store/kv-store.ts';
import { MasterKey } from '../store/master-key.ts';
import { toHex } from '../ttlv/hex.ts';
import { KmipClient } from '../upstream/client.ts';
import { placement } from './cpu-placement.ts';
import { CutProxy, type CutMode } from './cut-proxy.ts';
import { startBroker } from './devices-bench.ts';
import type { KindSummary, OutageLoadConfig, OutageLoadResult, PhaseSummary } from './outage-load.ts';

export interface OutageOptions {
  devices: number;
  /** Seconds of each phase with the upstream up (before and after the outage). */
  seconds: number;
  outageSeconds: number;
  cut: CutMode;
  /** Requests per second per device. */
  rate: number;
  /**
   * A device's resend interval while unanswered. device-sim resends every second; on a loaded
   * machine, once answers take longer than that, every resend adds work and the load snowballs —
   * so the default here is 5 s, as in `bench devices`, and 1000 shows the snowball.
   */
  resendMs: number;
  json: boolean;
  out: (text: string) => void;
}

/** Keys never cached before the phase that asks for them (a device cycles through them). */
const UNCOVERED_KEYS_PER_PHASE = 50;
const WARM_UP_SECONDS = 3;
/** A device's deadline for one request (device-sim's and DeviceRequester's default). */
const DEADLINE_MS = 30_000;

/** This CLI, as a child process (the bundle, or src/cli/main.ts under tsx). */
function cli(args: string[], extraNodeArgs: string[] = []): ChildProcess {
  return benchChild(spawn(process.execPath, [...process.execArgv, ...extraNodeArgs, process.argv[1]!, ...args], { stdio: ['pipe', 'pipe', 'pipe'] }));
}

/** Keeps the last few KB of a child's stderr, to say why it failed. */
function tail(child: ChildProcess): () => string {
  let text = '';
  child.stderr!.on('data', (chunk: Buffer) => (text = (text + chunk.toString()).slice(-4000)));
  return () => text;
}

/** The first stdout line of `child` (its ready line), or an error naming it if it exits first. */
function firstLine(child: ChildProcess, what: string, stderr: () => string, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new KmipEdgeError('BENCH_FAILED', `${what} printed nothing within ${timeoutMs} ms: ${stderr()}`)), timeoutMs);
    lines.once('line', (line) => (clearTimeout(timer), resolve(line)));
    child.once('exit', (code) => (clearTimeout(timer), reject(new KmipEdgeError('BENCH_FAILED', `${what} exited ${code}: ${stderr()}`))));
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => (clearTimeout(kill), resolve(code)));
    child.kill('SIGTERM');
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (ms: number | undefined | null) => (ms === undefined || ms === null ? null : Math.round(ms));


/** The bound the agent's back-off sets on resuming after the upstream returns, read from its defaults. */
function backoffBound(pki: { ca: string; clientCert: string; clientKey: string }): { cooldownMs: number; maxReconnectBackoffMs: number; boundMs: number } {
  // The defaults live in the constructors; read them from instances rather than copy the numbers.
  const cooldownMs = (new CircuitBreaker() as unknown as { cooldownMs: number }).cooldownMs;
  const pool = new TlsPool({ host: '127.0.0.1', port: 1, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) });
  const maxReconnectBackoffMs = (pool as unknown as { maxBackoffMs: number }).maxBackoffMs;
  void pool.close();
  return { cooldownMs, maxReconnectBackoffMs, boundMs: cooldownMs + maxReconnectBackoffMs };
}

export async function benchOutage(options: OutageOptions): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-bench-outage-'));
  const children: ChildProcess[] = [];
  let proxy: CutProxy | undefined;
  let broker: Awaited<ReturnType<typeof startBroker>> | undefined;
  const progress = (text: string) => process.stderr.write(`bench outage: ${text}\n`);
  // Stopped early (SIGTERM, or SIGINT outside a terminal's process group): take the processes down too.
  const interrupted = () => {
    for (const child of children) child.kill('SIGKILL');
    broker?.stop();
    rmSync(dir, { recursive: true, force: true });
    process.exit(1);
  };
  process.once('SIGTERM', interrupted);
  process.once('SIGINT', interrupted);
  try {
    broker = await startBroker(dir, placement('shared').placement);
    const server = cli(['dev-server', '--port', '0', '--dir', join(dir, 'kms')]);
    children.push(server);
    const pki = JSON.parse(await firstLine(server, 'the dev server', tail(server))) as { port: number; ca: string; clientCert: string; clientKey: string };
    proxy = await CutProxy.start({ host: '127.0.0.1', port: pki.port });

    // The keys, created directly on the server (not through the relay the agent uses).
    const client = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port: pki.port, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }), version: { major: 1, minor: 2 } });
    const create = async (name: string, usageLimits?: bigint) => {
      const uid = await client.create(ObjectType.SymmetricKey, benchKeyAttributes(name, usageLimits));
      await client.activate(uid);
      return uid;
    };
    const cachedKey = await create('outage-cached');
    const allocationKey = await create('outage-allocation', 1n << 50n);
    const uncovered = async (phase: string) => Promise.all(Array.from({ length: UNCOVERED_KEYS_PER_PHASE }, (_, i) => create(`outage-${phase}-${i}`)));
    const uncoveredKeys = { before: await uncovered('before'), outage: await uncovered('outage') };
    await client.close();

    // The devices, registered in the agent's store before it starts (as `kmip-edge device add` does).
    const data = join(dir, 'agent');
    const paths = dataDir(data, true);
    const store = await LevelStore.open(paths.store);
    const registry = new DeviceRegistry(store, MasterKey.load(paths.masterKey));
    const keys = [cachedKey, allocationKey, ...uncoveredKeys.before, ...uncoveredKeys.outage].map((uniqueIdentifier) => ({ uniqueIdentifier }));
    const devices: OutageLoadConfig['devices'] = [];
    for (let i = 0; i < options.devices; i++) {
      const device = await registry.add(`outage-${i}`, { keys, limits: { requestsPerSecond: Math.max(50, options.rate * 4) } });
      devices.push({ id: device.id, key: toHex(device.key), suite: device.suite });
    }
    await store.close();

    const agent = cli(['run', '--data', data, '--upstream', `127.0.0.1:${proxy.port}`, '--upstream-ca', pki.ca, '--upstream-cert', pki.clientCert, '--upstream-key', pki.clientKey, '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--log-level', 'error']);
    children.push(agent);
    const agentLog = tail(agent);
    await firstLine(agent, 'the agent', agentLog);
    // An agent that ends before it is told to is a finding: when, how, and its last words.
    let agentEnded: { afterCutMs: number | null; code: number | null; signal: string | null } | undefined;
    let cutAt: number | undefined;
    let stopping = false;
    agent.once('exit', (code, signal) => {
      if (stopping) return;
      agentEnded = { afterCutMs: cutAt === undefined ? null : Math.round(performance.now() - cutAt), code, signal };
      progress(`the agent exited (${signal ?? code}) ${cutAt === undefined ? 'before the cut' : `${agentEnded.afterCutMs} ms after the cut`}; its last log lines:\n${agentLog()}`);
    });

    const load = cli(['bench', 'outage-load'], ['--max-semi-space-size=64']);
    children.push(load);
    const loadLog = tail(load);
    const config: OutageLoadConfig = {
      port: broker.port, devices, rate: options.rate, cachedKey, allocationKey,
      // after the outage, the keys refused during it: their first answers are the cache fills resuming
      uncoveredKeys: { warmup: [], before: uncoveredKeys.before, outage: uncoveredKeys.outage, after: uncoveredKeys.outage },
      resendMs: options.resendMs, deadlineMs: DEADLINE_MS,
    };
    load.stdin!.write(JSON.stringify(config) + '\n');
    const loadLines = createInterface({ input: load.stdout! })[Symbol.asyncIterator]();
    const ready = await Promise.race([loadLines.next(), new Promise<never>((_, reject) => load.once('exit', (code) => reject(new KmipEdgeError('BENCH_FAILED', `the device load exited ${code}: ${loadLog()}`))))]);
    if (ready.done || ready.value !== 'ready') throw new KmipEdgeError('BENCH_FAILED', `the device load did not start: ${loadLog()}`);
    const phase = (name: string) => load.stdin!.write(`phase ${name}\n`);

    progress(`${options.devices} devices connected; warm-up ${WARM_UP_SECONDS} s, then ${options.seconds} s with the upstream up`);
    phase('warmup');
    await sleep(WARM_UP_SECONDS * 1000);
    phase('before');
    await sleep(options.seconds * 1000);
    progress(`upstream cut (${options.cut}) for ${options.outageSeconds} s`);
    await proxy.cutOff(options.cut);
    cutAt = performance.now();
    phase('outage');
    await sleep(options.outageSeconds * 1000);
    await proxy.restore();
    const restoredAt = proxy.restoredAt!;
    phase('after');
    progress(`upstream back; ${options.seconds} s more`);
    await sleep(options.seconds * 1000);
    load.stdin!.end('end\n');
    const resultLine = await loadLines.next();
    if (resultLine.done) throw new KmipEdgeError('BENCH_FAILED', `the device load printed no result: ${loadLog()}`);
    const result = JSON.parse(resultLine.value) as OutageLoadResult;
    const firstRelayedMs = proxy.firstRelayedAfterRestore === undefined ? null : Math.round(proxy.firstRelayedAfterRestore - restoredAt);

    stopping = true;
    const agentExit = agentEnded ? null : await stop(agent);
    if (agentExit !== 0 && !agentEnded) progress(`the agent exited ${agentExit} on SIGTERM; its last log lines:\n${agentLog()}`);
    const ledgerStore = await LevelStore.open(paths.store);
    const totals = await new Ledger({ store: ledgerStore, allocate: () => Promise.reject(new Error('read only')) }).totals(allocationKey);
    await ledgerStore.close();

    report(options, result, {
      firstRelayedMs, bound: backoffBound(pki), agentExit, agentEnded: agentEnded ?? null,
      unitsDebited: Number(totals.grantedToDevices), unitsAllocatedFromUpstream: Number(totals.allocatedFromUpstream),
      unitsDelivered: Object.values(result.phases).reduce((sum, p) => sum + p.unitsReceived, 0),
    });
  } finally {
    for (const child of children.reverse()) await stop(child);
    await proxy?.close();
    broker?.stop();
    rmSync(dir, { recursive: true, force: true });
    process.off('SIGTERM', interrupted);
    process.off('SIGINT', interrupted);
  }
}

interface Extra {
  firstRelayedMs: number | null;
  bound: ReturnType<typeof backoffBound>;
  agentExit: number | null;
  /** Set when the agent ended by itself during the run. */
  agentEnded: { afterCutMs: number | null; code: number | null; signal: string | null } | null;
  unitsDebited: number;
  unitsAllocatedFromUpstream: number;
  unitsDelivered: number;
}

function latency(prefix: string, k: KindSummary, which: 'answered' | 'refused'): Record<string, number | null> {
  return { [`${prefix}P50Ms`]: k[`${which}P50Ms`], [`${prefix}P99Ms`]: k[`${which}P99Ms`], [`${prefix}MaxMs`]: k[`${which}MaxMs`] };
}

function report(options: OutageOptions, result: OutageLoadResult, extra: Extra): void {
  const empty = { seconds: 0, kinds: {}, firstAnsweredMs: {}, firstRefusedMs: {}, lastAllocationAnsweredMs: undefined, lastAllocationRefusedMs: undefined, unitsReceived: 0 } as unknown as PhaseSummary;
  const before = result.phases.before ?? empty;
  const outage = result.phases.outage ?? empty;
  const after = result.phases.after ?? empty;
  const common = { bench: 'outage', cut: options.cut, devices: options.devices, outageSeconds: options.outageSeconds, ratePerDevice: options.rate, resendMs: options.resendMs };
  const lines: Record<string, unknown>[] = [];
  const cached = (p: PhaseSummary) => p.kinds.cachedGet;
  lines.push({
    ...common, measure: 'cachedGet',
    answered: cached(outage).answered, errors: cached(outage).errors, refused: cached(outage).refused, finishedAfterReturn: cached(outage).finishedAfterPhase, refusedReasons: cached(outage).refusedReasons, ...latency('', cached(outage), 'answered'),
    baselineAnswered: cached(before).answered, baselineErrors: cached(before).errors, baselineRefused: cached(before).refused, ...latency('baseline', cached(before), 'answered'),
    afterAnswered: cached(after).answered, afterErrors: cached(after).errors, afterRefused: cached(after).refused, ...latency('after', cached(after), 'answered'),
  });
  const alloc = (p: PhaseSummary) => p.kinds.allocation;
  lines.push({
    ...common, measure: 'allocation',
    answered: alloc(outage).answered, refused: alloc(outage).refused, refusedReasons: alloc(outage).refusedReasons, errors: alloc(outage).errors, finishedAfterReturn: alloc(outage).finishedAfterPhase,
    ...latency('answered', alloc(outage), 'answered'), ...latency('refused', alloc(outage), 'refused'),
    // how long the units allocated before the cut lasted: the last allocation answered before the upstream came back
    lastAnsweredAfterCutMs: round(outage.lastAllocationAnsweredMs),
    baselineAnswered: alloc(before).answered, baselineRefused: alloc(before).refused, baselineErrors: alloc(before).errors, ...latency('baseline', alloc(before), 'answered'),
    afterAnswered: alloc(after).answered, afterRefused: alloc(after).refused, afterErrors: alloc(after).errors, ...latency('after', alloc(after), 'answered'),
  });
  const unc = (p: PhaseSummary) => p.kinds.uncoveredGet;
  lines.push({
    ...common, measure: 'uncoveredGet',
    refused: unc(outage).refused, refusedReasons: unc(outage).refusedReasons, answered: unc(outage).answered, errors: unc(outage).errors, finishedAfterReturn: unc(outage).finishedAfterPhase, ...latency('refused', unc(outage), 'refused'),
    // a refusal should cost what a cache hit costs in the same phase …
    ...latency('cachedGetSamePhase', cached(outage), 'answered'),
    // … and the same Gets with the upstream up, fetched from it (then cached)
    baselineAnswered: unc(before).answered, baselineErrors: unc(before).errors, ...latency('baseline', unc(before), 'answered'),
  });
  // Refills "resume" only if allocations were being refused when the upstream came back.
  const refusedAtEnd = (outage.lastAllocationRefusedMs ?? -1) > (outage.lastAllocationAnsweredMs ?? -1);
  lines.push({
    ...common, measure: 'recovery',
    // from the upstream's return: the first allocation answered (refills resumed, if the outage used up the units), the first never-cached key fetched
    // (answers arriving after the return, whenever the request was sent)
    refillResumedMs: refusedAtEnd ? round(after.firstAnsweredMs.allocation) : null,
    cacheFillResumedMs: round(after.firstAnsweredMs.uncoveredGet),
    firstUpstreamConnectionMs: extra.firstRelayedMs,
    backoffBoundMs: extra.bound.boundMs, breakerCooldownMs: extra.bound.cooldownMs, maxReconnectBackoffMs: extra.bound.maxReconnectBackoffMs,
    unitsDebited: extra.unitsDebited, unitsDelivered: extra.unitsDelivered, unitsAllocatedFromUpstream: extra.unitsAllocatedFromUpstream,
    // the agent's exit code on SIGTERM at the end (0: drained), or how it ended by itself during the run
    agentExitCode: extra.agentExit, agentEndedDuringRun: extra.agentEnded,
    phaseSeconds: { before: Number(before.seconds.toFixed(1)), outage: Number(outage.seconds.toFixed(1)), after: Number(after.seconds.toFixed(1)) },
  });
  if (options.json) {
    for (const line of lines) options.out(JSON.stringify(line) + '\n');
    return;
  }
  const [g, a, u, r] = lines as Record<string, number | null | Record<string, number>>[];
  const ms = (v: unknown) => (v === null || v === undefined ? '–' : `${v} ms`);
  options.out(`outage: ${options.devices} devices, ${options.rate} request/s each, upstream ${options.cut === 'refuse' ? 'refusing connections' : 'blackholed'} for ${options.outageSeconds} s (baseline: the same load with the upstream up, same run)\n`);
  options.out(`  (requests sent during the outage and answered only after the return: cached Gets ${g!.finishedAfterReturn}, allocations ${a!.finishedAfterReturn}, never-cached Gets ${u!.finishedAfterReturn})\n`);
  options.out(`  cached Gets:        ${g!.answered} answered, ${g!.errors} errors, ${g!.refused} refused; p50 ${ms(g!.P50Ms)} p99 ${ms(g!.P99Ms)}  |  before: ${g!.baselineAnswered} answered, ${g!.baselineErrors} errors, p50 ${ms(g!.baselineP50Ms)} p99 ${ms(g!.baselineP99Ms)}\n`);
  options.out(`  allocations:        ${a!.answered} answered (units lasted ${ms(a!.lastAnsweredAfterCutMs)} into the outage), ${a!.refused} refused ${JSON.stringify(a!.refusedReasons)}, ${a!.errors} errors; refused p50 ${ms(a!.refusedP50Ms)} p99 ${ms(a!.refusedP99Ms)}  |  before: ${a!.baselineAnswered} answered, ${a!.baselineRefused} refused, ${a!.baselineErrors} errors, p50 ${ms(a!.baselineP50Ms)} p99 ${ms(a!.baselineP99Ms)}\n`);
  options.out(`  never-cached Gets:  ${u!.refused} refused ${JSON.stringify(u!.refusedReasons)}, ${u!.errors} errors; p50 ${ms(u!.refusedP50Ms)} p99 ${ms(u!.refusedP99Ms)}  |  cached Gets meanwhile p50 ${ms(u!.cachedGetSamePhaseP50Ms)} p99 ${ms(u!.cachedGetSamePhaseP99Ms)}; before (fetched): p50 ${ms(u!.baselineP50Ms)} p99 ${ms(u!.baselineP99Ms)}\n`);
  options.out(`  after the return:   refills resumed in ${ms(r!.refillResumedMs)}, cache fills in ${ms(r!.cacheFillResumedMs)}, first upstream connection ${ms(r!.firstUpstreamConnectionMs)}  |  back-off bound ${ms(r!.backoffBoundMs)} (breaker ${r!.breakerCooldownMs} + reconnect ${r!.maxReconnectBackoffMs})\n`);
  options.out(`  units:              ${r!.unitsDebited} debited by the ledger, ${r!.unitsDelivered} received by devices (${r!.unitsAllocatedFromUpstream} allocated from the upstream)\n`);
  options.out(`  the agent:          ${r!.agentEndedDuringRun ? `ended by itself during the run: ${JSON.stringify(r!.agentEndedDuringRun)}` : `exit code ${r!.agentExitCode} on SIGTERM at the end`}\n`);
}
