/**
 * `kmip-edge bench footprint`, smoke-sized: a few keys and devices, through the real processes the
 * benchmark starts (dev server, agent with its embedded broker, devices fetching every key). Checks
 * that it runs and reports the three measured fields with their same-run baselines — never the
 * figures themselves.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { ROOT } from '../helpers/cli.ts';

const BIN = join(ROOT, 'dist/kmip-edge.mjs');

it('bench footprint --json: cold start, resident memory with every key fetched, bundle bytes, and the baselines', () => {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build (npm test does)`);
  const run = spawnSync(process.execPath, [BIN, 'bench', 'footprint', '--json', '--keys', '30', '--devices', '3', '--rounds', '2'], { cwd: ROOT, encoding: 'utf8', timeout: 150_000 });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trim().split('\n');
  assert.equal(lines.length, 1, run.stdout);
  const result = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.deepEqual({ bench: result.bench, keys: result.keys, devices: result.devices, rounds: result.rounds }, { bench: 'footprint', keys: 30, devices: 3, rounds: 2 });
  const positive = (field: string) => assert.ok(typeof result[field] === 'number' && (result[field] as number) > 0, `${field}: ${String(result[field])}`);
  for (const field of ['coldStartMs', 'rssMb', 'bundleBytes', 'nodeStartMs', 'versionMs', 'idleRssMb', 'filledRssMb', 'peakRssMb', 'heapUsedMb', 'heapTotalMb', 'externalMb']) positive(field);
  assert.equal(result.bundleBytes, statSync(join(ROOT, 'dist/kmip-edge.cjs')).size, 'the bundle beside the command');
  // The cache the build made, accepted by this Node (test/process/code-cache.test.ts: a foreign one is rejected).
  assert.equal(result.codeCache, 'accepted');
  assert.ok((result.peakRssMb as number) >= (result.rssMb as number));
  // Measured as the package runs the agent: with its systemd unit's environment.
  assert.deepEqual(result.environment, { MALLOC_ARENA_MAX: '1', MALLOC_TRIM_THRESHOLD_: '131072', MALLOC_MMAP_THRESHOLD_: '131072', NODE_OPTIONS: '--use-openssl-ca' });
  assert.deepEqual(result.targets, { coldStartMs: 300, rssMb: 80, bundleBytes: 1_000_000 });
});

it('bench footprint: the table names each figure with its baseline and target', () => {
  const run = spawnSync(process.execPath, [BIN, 'bench', 'footprint', '--keys', '10', '--devices', '2', '--rounds', '1'], { cwd: ROOT, encoding: 'utf8', timeout: 150_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /cold start to ready .* ms .*bare node \d+ ms, kmip-edge --version \d+ ms/);
  assert.match(run.stdout, /resident memory .* MB .*just after start, nothing fetched: [\d.]+ MB; right after the fill: [\d.]+ MB/);
  assert.match(run.stdout, /bundle .* bytes .*\(V8 code cache: accepted\)/);
});
