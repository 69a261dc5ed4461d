/**
 * The process that the created-record crash test kills: an agent core, its key pool (one client,
 * one template of two keys) and the edge KMIP service, against the development server.
 *
 *   node --import tsx test/crash/created-record-child.ts fill|create DATA_DIR KMS_DIR PORT
 *
 * `fill` (key server up) fills the pool, prints {"filled":[uids]} and exits. `create` (key server
 * stopped) sends one Create from the client through the service: the pool answers it. Its log
 * goes to stdout synchronously, and the line `pool_key_taken` — written by the pool right after
 * the take's synced batch, before takeOffline returns to the service — SIGKILLs the process
 * itself: the kill lands in the window after the take is durable and before the service could
 * write anything of its own (created-keys.ts `ensure`), deterministically. A `create` that is not
 * killed prints {"answered":uid}.
 */
import { writeSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { CircuitBreaker } from '../../src/agent/circuit-breaker.ts';
import { EdgeKmipService } from '../../src/edge/edge-kmip-service.ts';
import { KeyPool } from '../../src/edge/key-pool.ts';
import { buildRequestMessage, parseResponseMessage } from '../../src/kmip/message.ts';
import { payload, readUniqueIdentifier } from '../../src/kmip/payloads.ts';
import { CryptographicAlgorithm, ObjectType, Operation } from '../../src/kmip/tables.generated.ts';
import { createLogger } from '../../src/log.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { ALL_CLIENT_OPERATIONS, localClient } from '../helpers/edge.ts';

export const CRASH_CLIENT = 'lib-crash';
export const CRASH_NAME = 'cartridge-CR0001';
/** The client's allow-list names no key: only its record as the key's creator lets it see one. */
export const crashPrincipal = () => localClient(CRASH_CLIENT, [], ALL_CLIENT_OPERATIONS);
export const crashClients = () => [{ id: CRASH_CLIENT, pool: [{ algorithm: CryptographicAlgorithm.AES, length: 256, size: 2 }] }];

// Run as a process (the test imports the constants above only).
if (process.argv[1]?.endsWith('created-record-child.ts')) {
  const [mode, data, kms, port] = process.argv.slice(2) as ['fill' | 'create', string, string, string];
  const out = (line: string): void => void writeSync(1, line);
  const log = createLogger({ level: 'info' }, {
    write(line: string) {
      out(line);
      if ((JSON.parse(line) as { event?: string }).event === 'pool_key_taken') process.kill(process.pid, 'SIGKILL');
    },
  });
  const client = new KmipClient({
    transport: new TlsPool({ host: '127.0.0.1', port: Number(port), ca: readFileSync(join(kms, 'ca.pem')), cert: readFileSync(join(kms, 'client.pem')), key: readFileSync(join(kms, 'client.key')) }, { minBackoffMs: 10, maxBackoffMs: 50 }),
    version: { major: 1, minor: 2 }, retries: 0, timeoutMs: 2000,
  });
  const agent = await AgentCore.open({ data, client, log, breaker: new CircuitBreaker(1, 60_000) });
  const pool = await KeyPool.open({ agent, log, clients: crashClients });
  if (mode === 'fill') {
    const report = await pool.sync();
    if (report.error || report.created !== 2) throw new Error(`fill: ${JSON.stringify(report)}`);
    const filled = (await agent.listKeys()).map((k) => k.uniqueIdentifier);
    await agent.close();
    await client.close();
    out(JSON.stringify({ filled }) + '\n');
    process.exit(0);
  }
  const service = new EdgeKmipService(agent, agent.store, log, { offlineCreator: pool });
  const request = encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Create, payload: payload.create(ObjectType.SymmetricKey, aesKey(CRASH_NAME)) }]));
  const answer = parseResponseMessage(decodeTtlv((await service.handle(crashPrincipal(), request, 'crash-create')).response));
  const item = answer.batchItems[0]!;
  out(JSON.stringify({ answered: item.payload ? readUniqueIdentifier(item.payload) : null, resultMessage: item.resultMessage }) + '\n');
  process.exit(0);
}
