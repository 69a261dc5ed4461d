/**
 * `kmip-edge bench kmip-endpoint`, smoke-sized, from the built CLI: the processes it starts (the
 * dev server, the agent core with the endpoint, the echo, the TLS load process) run and it prints
 * one JSON line per client count with its same-run baselines. Checks the lines' shape, never the
 * timings (benchmarks print figures, tests do not judge them).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
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
