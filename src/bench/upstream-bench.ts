/**
 * Upstream benchmark (CLI.md `bench upstream`): fetch N distinct keys from a real PyKMIP server
 * with the kmip-edge client (coalescing, a pool of 2 connections), next to PyKMIP's own Python
 * client doing the same Gets one at a time, in the same run against the same server.
 */
import { benchKeyAttributes } from './bench-key.ts';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.ts';
import { KmipEdgeError } from '../errors.ts';
import { ObjectType } from '../kmip/tables.generated.ts';
import type { TlsEndpoint } from '../net/tls-options.ts';
import { TlsPool } from '../net/tls-pool.ts';
import { KmipClient } from '../upstream/client.ts';
import { packageRoot } from '../cli/package-root.ts';

const PYTHON = '/usr/bin/python3';
/** Rounds of each side, alternated so that server warm-up and noise favour neither; best kept. */
const ROUNDS = 2;

/** PyKMIP's ProxyKmipClient, one Get at a time over one connection, timed in Python. */
const PYKMIP_CLIENT = `
import sys, time
from kmip.pie.client import ProxyKmipClient
from kmip import enums
host, port, ca, cert, key, uids = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6].split(',')
client = ProxyKmipClient(hostname=host, port=port, cert=cert, key=key, ca=ca, config_file='/dev/null', kmip_version=enums.KMIPVersion.KMIP_1_2)
client.open()
start = time.perf_counter()
for uid in uids:
    client.get(uid)
print(time.perf_counter() - start)
client.close()
`;

/** The timed side of kmip-edge: all Gets at once, coalesced into batches of 64 over 2 connections. */
async function timeOurGets(endpoint: TlsEndpoint, uids: string[]): Promise<{ seconds: number; cpuMicros: number }> {
  const client = new KmipClient({ transport: new TlsPool(endpoint, { maxConnections: 2 }), version: { major: 1, minor: 2 }, coalesce: { windowMs: 0, maxBatch: 64 } });
  try {
    await client.query([1]); // open the first connection outside the timing, as the baseline does
    const cpuBefore = process.cpuUsage();
    const started = process.hrtime.bigint();
    const results = await Promise.all(uids.map((uid) => client.get(uid)));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = process.cpuUsage(cpuBefore);
    results.forEach((r, i) => {
      if (r.uniqueIdentifier !== uids[i]) throw new Error(`bench: Get ${uids[i]} returned ${r.uniqueIdentifier}`);
    });
    return { seconds, cpuMicros: cpu.user + cpu.system };
  } finally {
    await client.close();
  }
}

function timePyKmipGets(port: number, dir: string, uids: string[]): number {
  const run = spawnSync(PYTHON, ['-c', PYKMIP_CLIENT, '127.0.0.1', String(port), join(dir, 'ca.pem'), join(dir, 'client.pem'), join(dir, 'client.key'), uids.join(',')], { encoding: 'utf8', timeout: 600_000 });
  if (run.status !== 0) throw new Error(`PyKMIP client baseline failed: ${run.stderr.trim().split('\n').at(-1)}`);
  return Number(run.stdout.trim());
}

export async function benchUpstream(options: { keys: number; json: boolean; out: (text: string) => void }): Promise<void> {
  const script = join(packageRoot(), '..', 'shared', 'interop', 'pykmip-upstream.sh');
  if (!existsSync(script) || !existsSync(PYTHON)) {
    throw new KmipEdgeError('BENCH_UNAVAILABLE', `bench upstream needs ${script} and python3-pykmip (sudo scripts/install-peers.sh)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-bench-'));
  const port = await freePort();
  // WARNING-level logging: PyKMIP writes a log line per operation at INFO, which both sides would pay.
  execFileSync('bash', [script, 'start', dir, String(port)], { stdio: ['ignore', 'ignore', 'ignore'], timeout: 60_000, env: { ...process.env, PYKMIP_LOG_LEVEL: 'WARNING' } });
  const endpoint = { host: '127.0.0.1', port, ca: readFileSync(join(dir, 'ca.pem')), cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')) };
  try {
    const setup = new KmipClient({ transport: new TlsPool(endpoint, { maxConnections: 2 }), version: { major: 1, minor: 2 } });
    const uids = await Promise.all(Array.from({ length: options.keys }, (_, i) => setup.create(ObjectType.SymmetricKey, benchKeyAttributes(`bench-${i}`))));
    await setup.close();

    let seconds = Infinity;
    let cpuMicros = Infinity;
    let baselineSeconds = Infinity;
    for (let round = 0; round < ROUNDS; round++) {
      const ours = await timeOurGets(endpoint, uids);
      if (ours.seconds < seconds) ({ seconds, cpuMicros } = ours);
      baselineSeconds = Math.min(baselineSeconds, timePyKmipGets(port, dir, uids));
    }
    const result = {
      bench: 'upstream',
      keys: options.keys,
      seconds: Number(seconds.toFixed(3)),
      baselineSeconds: Number(baselineSeconds.toFixed(3)),
      speedup: Number((baselineSeconds / seconds).toFixed(2)),
      clientCpuMicrosPerCall: Math.round(cpuMicros / options.keys),
    };
    if (options.json) options.out(JSON.stringify(result) + '\n');
    else {
      options.out(
        `upstream: ${options.keys} distinct Gets from PyKMIP\n` +
          `  kmip-edge (coalesced, pool of 2)  ${result.seconds} s  (${Math.round(options.keys / seconds)}/s, ${result.clientCpuMicrosPerCall} µs client CPU per call)\n` +
          `  PyKMIP client, one at a time      ${result.baselineSeconds} s  → ${result.speedup}× faster\n`,
      );
    }
  } finally {
    spawnSync('bash', [script, 'stop', dir], { stdio: 'ignore', timeout: 30_000 });
    rmSync(dir, { recursive: true, force: true });
  }
}
