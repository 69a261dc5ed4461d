/**
 * `kmip-edge bench outage`, smoke-sized: a few devices, a short outage of each kind, through the
 * real processes the benchmark starts (dev server, Mosquitto, agent, device load). Checks the JSON
 * lines' shape and the invariants that do not depend on timing — never the timings themselves.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { ROOT } from '../helpers/cli.ts';

const BIN = join(ROOT, 'dist/kmip-edge.mjs');

function bench(args: string[]) {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build (npm test does)`);
  return spawnSync(process.execPath, [BIN, 'bench', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 150_000 });
}

const isCount = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
const isMsOrNull = (v: unknown) => v === null || (typeof v === 'number' && v >= 0);

for (const cut of ['refuse', 'blackhole'] as const) {
  it(`bench outage --cut ${cut}: one JSON line per measurement, with its same-run baseline`, () => {
    const run = bench(['outage', '--json', '--devices', '3', '--seconds', '1', '--outage-seconds', '2', '--rate', '5', '--cut', cut]);
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => l.measure), ['cachedGet', 'allocation', 'uncoveredGet', 'recovery']);
    for (const line of lines) assert.deepEqual({ bench: line.bench, cut: line.cut, devices: line.devices, outageSeconds: line.outageSeconds, resendMs: line.resendMs }, { bench: 'outage', cut, devices: 3, outageSeconds: 2, resendMs: 5000 });
    const [cached, allocation, uncovered, recovery] = lines as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    for (const field of ['answered', 'errors', 'refused', 'finishedAfterReturn', 'baselineAnswered', 'baselineErrors', 'afterAnswered', 'afterErrors']) assert.ok(isCount(cached[field]), `cachedGet.${field}`);
    for (const field of ['P50Ms', 'P99Ms', 'baselineP50Ms', 'baselineP99Ms', 'afterP50Ms']) assert.ok(isMsOrNull(cached[field]), `cachedGet.${field}`);
    // the devices ran in every phase: the baseline is a measurement, not an empty one
    assert.ok((cached.baselineAnswered as number) > 0 && (allocation.baselineAnswered as number) > 0 && (uncovered.baselineAnswered as number) > 0);
    for (const field of ['answered', 'refused', 'errors', 'baselineAnswered', 'afterAnswered']) assert.ok(isCount(allocation[field]), `allocation.${field}`);
    for (const field of ['refusedP50Ms', 'refusedP99Ms', 'answeredP50Ms', 'lastAnsweredAfterCutMs', 'baselineP50Ms']) assert.ok(isMsOrNull(allocation[field]), `allocation.${field}`);
    assert.equal(typeof allocation.refusedReasons, 'object');
    for (const field of ['refused', 'answered', 'errors', 'baselineAnswered']) assert.ok(isCount(uncovered[field]), `uncoveredGet.${field}`);
    for (const field of ['refusedP50Ms', 'refusedP99Ms', 'cachedGetSamePhaseP50Ms', 'baselineP50Ms']) assert.ok(isMsOrNull(uncovered[field]), `uncoveredGet.${field}`);
    for (const field of ['refillResumedMs', 'cacheFillResumedMs', 'firstUpstreamConnectionMs']) assert.ok(isMsOrNull(recovery[field]), `recovery.${field}`);
    assert.ok((recovery.backoffBoundMs as number) > 0 && recovery.backoffBoundMs === (recovery.breakerCooldownMs as number) + (recovery.maxReconnectBackoffMs as number));
    // Durability, not timing: every unit the ledger debited reached a device, and the agent stopped cleanly.
    assert.ok((recovery.unitsDebited as number) > 0);
    assert.equal(recovery.unitsDelivered, recovery.unitsDebited);
    assert.ok((recovery.unitsAllocatedFromUpstream as number) >= (recovery.unitsDebited as number));
    assert.equal(recovery.agentExitCode, 0);
  });
}

it('bench outage flags: a mistake is one line and exit 2, before anything starts', () => {
  for (const args of [['outage', '--cut', 'unplug'], ['outage', '--devices', '1,2'], ['outage', '--outage-seconds', '0'], ['outage', '--rate', 'fast'], ['outage', '--resend-ms', '10'], ['devices', '--cut', 'refuse']]) {
    const run = bench(args);
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
  }
});
