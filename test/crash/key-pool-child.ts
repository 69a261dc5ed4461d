/**
 * The process that the key-pool crash test kills: an agent core and its key pool (one client, one
 * template) against the development server (a separate process), taking pooled keys as fast as
 * the pool refills while its periodic sync drains the outbox and refills. Each take gets a unique
 * Name, and is Activated every other time; once takeOffline resolved, the "answer" is sent after
 * a moment (0–2 ms, as a reply crosses TLS) by appending {uid, name} to the ack log, its own
 * append-only record of what it handed out. Logs (JSON lines, debug) go to stdout: the parent
 * kills on seeing `pool_key_taken` or `outbox_written`.
 *
 *   node --import tsx test/crash/key-pool-child.ts take|drain DATA_DIR KMS_DIR PORT ACK_LOG
 *
 * `drain` takes nothing: it syncs until the outbox is empty, prints {"drained":true} and exits.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { CircuitBreaker } from '../../src/agent/circuit-breaker.ts';
import { KeyPool } from '../../src/edge/key-pool.ts';
import { nameValue } from '../../src/kmip/attributes.ts';
import { CryptographicAlgorithm } from '../../src/kmip/tables.generated.ts';
import { createLogger, pino } from '../../src/log.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { KmipClient } from '../../src/upstream/client.ts';

const [mode, data, kms, port, ackLog] = process.argv.slice(2) as ['take' | 'drain', string, string, string, string];
export const CRASH_CLIENT = 'lib-crash';
const TAKERS = 3;

const log = createLogger({ level: 'debug' }, pino.destination({ dest: 1, sync: true }));
const client = new KmipClient({
  transport: new TlsPool({ host: '127.0.0.1', port: Number(port), ca: readFileSync(join(kms, 'ca.pem')), cert: readFileSync(join(kms, 'client.pem')), key: readFileSync(join(kms, 'client.key')) }),
  version: { major: 1, minor: 2 },
});
const agent = await AgentCore.open({ data, client, log, breaker: new CircuitBreaker(3, 100) });
const pool = await KeyPool.open({ agent, log, clients: () => [{ id: CRASH_CLIENT, pool: [{ algorithm: CryptographicAlgorithm.AES, length: 256, size: 4 }] }], backoff: { minMs: 10, maxMs: 100 } });

if (mode === 'drain') {
  for (;;) {
    const report = await pool.sync();
    if (!report.error && (await pool.status()).outbox.pending === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await pool.stop();
  await agent.close();
  await client.close();
  process.stdout.write(JSON.stringify({ drained: true }) + '\n');
  process.exit(0);
}

process.stdout.write(JSON.stringify({ ready: true }) + '\n');
pool.start(20);
let sequence = 0;
await Promise.all(
  Array.from({ length: TAKERS }, async () => {
    for (;;) {
      const n = sequence++;
      const name = `crash-${process.pid}-${n}`;
      const uid = await pool.takeOffline({ clientId: CRASH_CLIENT, algorithm: CryptographicAlgorithm.AES, length: 256, usageMask: undefined, objectGroup: undefined, attributes: [{ name: 'Name', value: nameValue(name) }], activate: n % 2 === 0 });
      if (uid === undefined) {
        await new Promise((resolve) => setTimeout(resolve, 5)); // empty: the sync refills it
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 2));
      appendFileSync(ackLog, JSON.stringify({ uid, name }) + '\n');
    }
  }),
);
