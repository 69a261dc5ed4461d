/**
 * The device side of `bench outage` (./outage-bench.ts), in its own process as devices are: N
 * simulated devices on MQTT, each making `rate` requests a second, one at a time, cycling through
 * a mix — a Get of a key the agent has cached, a Usage Allocation of one unit, and a Get of a key
 * the agent has never cached ("uncovered" during an outage) — and timing each to its answer.
 *
 * Started as `kmip-edge bench outage-load`; stdin carries the configuration as its first line, then
 * the phase changes ("phase NAME") and "end". It prints "ready" once every device is connected,
 * and on "end", when the requests in flight have finished, one JSON line: the tallies per phase.
 * A request counts in the phase it started in.
 */
import { createInterface } from 'node:readline';
import type { MqttClient } from 'mqtt';
import { DeviceClient, memoryCounters } from '../devices/device-client.ts';
import type { DeviceRequester } from '../devices/device-requester.ts';
import type { Suite } from '../devices/frame.ts';
import { MqttDevice } from '../devices/mqtt-device.ts';
import { connectMqtt } from '../devices/mqtt-transport.ts';
import { buildRequestMessage } from '../kmip/message.ts';
import { payload } from '../kmip/payloads.ts';
import { Operation, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { fromHex } from '../ttlv/hex.ts';

export interface OutageLoadConfig {
  port: number;
  devices: { id: string; key: string; suite: Suite }[];
  /** Requests per second per device. */
  rate: number;
  cachedKey: string;
  allocationKey: string;
  /** Keys never fetched before the phase that uses them, by phase name. */
  uncoveredKeys: Record<string, string[]>;
  /** Resend interval and deadline of a device's request (DeviceRequester). */
  resendMs: number;
  deadlineMs: number;
}

export type RequestKind = 'cachedGet' | 'allocation' | 'uncoveredGet';
/** The mix: shares of a device's requests. */
const SHARES: Readonly<Record<RequestKind, number>> = { cachedGet: 0.5, allocation: 0.4, uncoveredGet: 0.1 };

export interface KindTally {
  /** Answered with Success. */
  answered: number;
  /** Answered with a failure result (the agent refused), by result reason. */
  refused: number;
  refusedReasons: Record<string, number>;
  /** No answer before the deadline, or an answer that did not open. */
  errors: number;
  /** Of those, answered or refused only after the phase had ended (e.g. held until the upstream came back). */
  finishedAfterPhase: number;
  answeredMs: number[];
  refusedMs: number[];
}

export interface PhaseTally {
  seconds: number;
  kinds: Record<RequestKind, KindTally>;
  /**
   * Of the answers that arrived during this phase (whenever their request started), timed from the
   * phase's start: the last allocation answered and refused, the first answered / refused of each kind.
   */
  lastAllocationAnsweredMs: number | undefined;
  lastAllocationRefusedMs: number | undefined;
  firstAnsweredMs: Partial<Record<RequestKind, number>>;
  firstRefusedMs: Partial<Record<RequestKind, number>>;
  /** Units the devices were granted for requests started in this phase (one per answered allocation). */
  unitsReceived: number;
}

/** A tally as reported: latencies summarized (ms, three decimals). */
export interface KindSummary {
  answered: number;
  refused: number;
  refusedReasons: Record<string, number>;
  errors: number;
  finishedAfterPhase: number;
  answeredP50Ms: number | null;
  answeredP99Ms: number | null;
  answeredMaxMs: number | null;
  refusedP50Ms: number | null;
  refusedP99Ms: number | null;
  refusedMaxMs: number | null;
}

export interface PhaseSummary extends Omit<PhaseTally, 'kinds'> {
  kinds: Record<RequestKind, KindSummary>;
}

export interface OutageLoadResult {
  phases: Record<string, PhaseSummary>;
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return Number(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!.toFixed(3));
}

function summarize(tally: KindTally): KindSummary {
  const answered = tally.answeredMs.sort((a, b) => a - b);
  const refused = tally.refusedMs.sort((a, b) => a - b);
  return {
    answered: tally.answered, refused: tally.refused, refusedReasons: tally.refusedReasons, errors: tally.errors, finishedAfterPhase: tally.finishedAfterPhase,
    answeredP50Ms: percentile(answered, 50), answeredP99Ms: percentile(answered, 99), answeredMaxMs: percentile(answered, 100),
    refusedP50Ms: percentile(refused, 50), refusedP99Ms: percentile(refused, 99), refusedMaxMs: percentile(refused, 100),
  };
}

function emptyTally(): KindTally {
  return { answered: 0, refused: 0, refusedReasons: {}, errors: 0, finishedAfterPhase: 0, answeredMs: [], refusedMs: [] };
}

function newPhase(): PhaseTally {
  return { seconds: 0, kinds: { cachedGet: emptyTally(), allocation: emptyTally(), uncoveredGet: emptyTally() }, lastAllocationAnsweredMs: undefined, lastAllocationRefusedMs: undefined, firstAnsweredMs: {}, firstRefusedMs: {}, unitsReceived: 0 };
}

function request(operation: number, items: ReturnType<typeof payload.get>): Uint8Array {
  return encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation, payload: items }]));
}

export async function runOutageLoad(lines: AsyncIterator<string>, out: (text: string) => void): Promise<void> {
  const first = await lines.next();
  if (first.done) throw new Error('outage-load: no configuration on stdin');
  const config = JSON.parse(first.value) as OutageLoadConfig;
  const cachedGet = request(Operation.Get, payload.get(config.cachedKey));
  const allocation = request(Operation.GetUsageAllocation, payload.getUsageAllocation(config.allocationKey, 1n));
  const uncovered = new Map(Object.entries(config.uncoveredKeys).map(([phase, uids]) => [phase, uids.map((uid) => request(Operation.Get, payload.get(uid)))]));
  const clients: MqttClient[] = [];
  const devices: DeviceRequester[] = [];
  // Connect in small groups: a thousand simultaneous CONNECTs are a test of the broker, not of the agent.
  for (let i = 0; i < config.devices.length; i += 50) {
    devices.push(...(await Promise.all(config.devices.slice(i, i + 50).map(async (d) => {
      const mqtt = await connectMqtt({ host: '127.0.0.1', port: config.port, clientId: `outage-${d.id}-${process.pid}` });
      clients.push(mqtt);
      return MqttDevice.attach(mqtt, new DeviceClient(d.id, fromHex(d.key), d.suite, memoryCounters()));
    }))));
  }
  const phases = new Map<string, PhaseTally>();
  let phase: { name: string; tally: PhaseTally; started: number } | undefined;
  let ended = false;
  let end = () => {};
  const endedSignal = new Promise<void>((resolve) => (end = resolve));

  const one = async (device: DeviceRequester, kind: RequestKind, index: number): Promise<void> => {
    if (!phase) return;
    const current = phase;
    const body = kind === 'cachedGet' ? cachedGet : kind === 'allocation' ? allocation : (() => {
      const keys = uncovered.get(current.name) ?? uncovered.get('*');
      return keys && keys.length > 0 ? keys[index % keys.length]! : cachedGet;
    })();
    const tally = current.tally.kinds[kind];
    const started = performance.now();
    try {
      const response = await device.request(body, { resendMs: config.resendMs, deadlineMs: config.deadlineMs });
      const ms = performance.now() - started;
      // Counts and latencies go to the phase the request started in; first/last answers to the
      // phase current when the answer arrived, timed from that phase's start.
      const arrival = phase!;
      const since = performance.now() - arrival.started;
      const item = response.batchItems[0];
      if (arrival !== current) tally.finishedAfterPhase++;
      if (item?.resultStatus === ResultStatus.Success) {
        tally.answered++;
        tally.answeredMs.push(ms);
        arrival.tally.firstAnsweredMs[kind] ??= since;
        if (kind === 'allocation') {
          current.tally.unitsReceived++;
          arrival.tally.lastAllocationAnsweredMs = since;
        }
      } else {
        tally.refused++;
        tally.refusedMs.push(ms);
        arrival.tally.firstRefusedMs[kind] ??= since;
        if (kind === 'allocation') arrival.tally.lastAllocationRefusedMs = since;
        // the reason, and the agent's code when the message is one (AGENT_OFFLINE, LEDGER_INSUFFICIENT, …)
        const reason = `${item?.resultReason === undefined ? 'none' : enumerationText(Tag.ResultReason, item.resultReason)}${item?.resultMessage && /^[A-Z_]{3,40}$/.test(item.resultMessage) ? `:${item.resultMessage}` : ''}`;
        tally.refusedReasons[reason] = (tally.refusedReasons[reason] ?? 0) + 1;
      }
    } catch {
      tally.errors++;
    }
  };

  // Each device runs one loop per kind, each one request at a time (so up to three in flight, well
  // within the 16 a device may have): a device waiting for a key it lacks keeps using the one it
  // has — which shows whether a cached answer waits behind an upstream call.
  const loops = devices.flatMap((device, d) => (Object.entries(SHARES) as [RequestKind, number][]).map(async ([kind, share]) => {
    const intervalMs = 1000 / (config.rate * share);
    // Spread the devices over one interval, so that they do not all send at the same instant.
    await Promise.race([new Promise((resolve) => setTimeout(resolve, ((d + Math.random()) / devices.length) * intervalMs).unref()), endedSignal]);
    for (let n = d; !ended; n++) {
      const started = performance.now();
      if (phase) await one(device, kind, n);
      const wait = intervalMs - (performance.now() - started);
      if (wait > 0 && !ended) await Promise.race([new Promise((resolve) => setTimeout(resolve, wait).unref()), endedSignal]);
    }
  }));
  out('ready\n');
  for (;;) {
    const next = await lines.next();
    const line = next.done ? 'end' : next.value.trim();
    if (phase) phase.tally.seconds = (performance.now() - phase.started) / 1000;
    if (line.startsWith('phase ')) {
      const name = line.slice('phase '.length);
      const tally = newPhase();
      phases.set(name, tally);
      phase = { name, tally, started: performance.now() };
    } else if (line === 'end') {
      ended = true;
      end();
      break;
    }
  }
  await Promise.all(loops);
  clients.forEach((c) => c.end(true));
  const result: OutageLoadResult = {
    phases: Object.fromEntries([...phases].map(([name, tally]) => [name, { ...tally, kinds: { cachedGet: summarize(tally.kinds.cachedGet), allocation: summarize(tally.kinds.allocation), uncoveredGet: summarize(tally.kinds.uncoveredGet) } }])),
  };
  out(JSON.stringify(result) + '\n');
}

/** Lines of stdin, for `bench outage-load`. */
export function stdinLines(): AsyncIterator<string> {
  return createInterface({ input: process.stdin })[Symbol.asyncIterator]();
}
