/**
 * The process that the crash test kills: the ledger on LevelDB granting units of one key to many
 * concurrent requesters as fast as it can, against the development server (a separate process).
 * Each grant the ledger acknowledged is appended to the ack log — its own append-only record of
 * what it promised. On start it first re-sends some earlier requests (as devices retry after an
 * agent restart) and checks it gets the same answers.
 *
 *   node --import tsx test/crash/ledger-child.ts STORE_DIR PKI_DIR PORT UID ACK_LOG
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ledger } from '../../src/agent/ledger.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { KmipClient } from '../../src/upstream/client.ts';

const [storeDir, pkiDir, port, uid, ackLog] = process.argv.slice(2) as [string, string, string, string, string];
const REQUESTERS = 32;

const store = await LevelStore.open(storeDir);
const client = new KmipClient({
  transport: new TlsPool({ host: '127.0.0.1', port: Number(port), ca: readFileSync(join(pkiDir, 'ca.pem')), cert: readFileSync(join(pkiDir, 'client.pem')), key: readFileSync(join(pkiDir, 'client.key')) }),
  version: { major: 1, minor: 2 },
});
const ledger = new Ledger({ store, allocate: async (key, count) => void (await client.getUsageAllocation(key, count)), minChunk: 20n, maxChunk: 400n });

const acked = existsSync(ackLog) ? readFileSync(ackLog, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as { device: string; requestId: string; count: string }) : [];
for (const earlier of acked.slice(-20)) {
  const again = await ledger.grant(uid, earlier.device, earlier.requestId, BigInt(earlier.count));
  if (again.count !== BigInt(earlier.count)) {
    process.stderr.write(`retry of ${earlier.requestId} answered ${again.count}, first answer ${earlier.count}\n`);
    process.exit(3);
  }
}
process.stdout.write('ready\n');

let sequence = 0;
await Promise.all(
  Array.from({ length: REQUESTERS }, async (_, requester) => {
    for (;;) {
      const requestId = `${process.pid}-${requester}-${sequence++}`;
      const count = BigInt(1 + (sequence % 5));
      const grant = await ledger.grant(uid, `device-${requester}`, requestId, count);
      appendFileSync(ackLog, JSON.stringify({ device: grant.device, requestId, count: String(grant.count) }) + '\n');
    }
  }),
);
