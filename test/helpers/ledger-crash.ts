/**
 * Crash cycles for the ledger (ARCHITECTURE.md §4 invariants 1–3): a child process grants units
 * as fast as it can and is SIGKILLed at a random moment, again and again; after each kill the
 * store is opened and checked against the child's ack log and the upstream's own count.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ledger } from '../../src/agent/ledger.ts';
import { nameValue } from '../../src/kmip/attributes.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { optionalValue } from '../../src/kmip/tree.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { enumeration, integer, longInteger, structure } from '../../src/ttlv/build.ts';
import { ItemType } from '../../src/ttlv/item.ts';
import { KmipClient } from '../../src/upstream/client.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TOTAL = 10_000_000n;

export interface CycleReport {
  cycle: number;
  acked: number;
  grantedToDevices: bigint;
  allocatedFromUpstream: bigint;
  usedAtServer: bigint;
}

function startChild(args: string[]): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/crash/ledger-child.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`child exited ${code} before it was killed: ${stderr.trim()}`)));
  });
  return { child, ready };
}

export async function runLedgerCrashCycles(cycles: number, log: (report: CycleReport) => void = () => undefined): Promise<CycleReport[]> {
  const work = mkdtempSync(join(tmpdir(), 'kmip-edge-crash-'));
  const pkiDir = join(work, 'pki');
  const server = spawn(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), 'dev-server', '--port', '0', '--dir', pkiDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const reports: CycleReport[] = [];
  try {
    const { port } = await new Promise<{ port: number }>((resolve, reject) => {
      server.stdout!.once('data', (line: Buffer) => resolve(JSON.parse(line.toString()) as { port: number }));
      server.once('exit', (code) => reject(new Error(`dev-server exited ${code}`)));
    });
    const client = new KmipClient({
      transport: new TlsPool({ host: '127.0.0.1', port, ca: readFileSync(join(pkiDir, 'ca.pem')), cert: readFileSync(join(pkiDir, 'client.pem')), key: readFileSync(join(pkiDir, 'client.key')) }),
      version: { major: 1, minor: 2 },
    });
    try {
      const uid = await client.create(ObjectType.SymmetricKey, [
        { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, CryptographicAlgorithm.AES) },
        { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
        { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.Encrypt) },
        { name: 'Name', value: nameValue('crash-key') },
        { name: 'Usage Limits', value: structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, TOTAL), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Object)]) },
      ]);
      await client.activate(uid);
      const storeDir = join(work, 'agent-store');
      const ackLog = join(work, 'acked.jsonl');
      for (let cycle = 1; cycle <= cycles; cycle++) {
        const { child, ready } = startChild([storeDir, pkiDir, String(port), uid, ackLog]);
        await ready;
        await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 400));
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
        reports.push(await check(cycle, storeDir, ackLog, uid, client));
        log(reports.at(-1)!);
      }
    } finally {
      await client.close();
    }
  } finally {
    server.kill('SIGTERM');
  }
  return reports;
}

/** Opens the killed child's store and checks the invariants; throws on any violation. */
async function check(cycle: number, storeDir: string, ackLog: string, uid: string, client: KmipClient): Promise<CycleReport> {
  const store = await LevelStore.open(storeDir);
  try {
    const ledger = new Ledger({ store, allocate: async () => { throw new Error('the checker never allocates'); } });
    const records = await ledger.grants(uid);
    const byRequest = new Map(records.map((r) => [`${r.device}/${r.requestId}`, r]));
    const acked = readFileSync(ackLog, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as { device: string; requestId: string; count: string });
    for (const grant of acked) {
      const record = byRequest.get(`${grant.device}/${grant.requestId}`);
      if (!record) throw new Error(`cycle ${cycle}: acknowledged grant ${grant.requestId} is not in the ledger`);
      if (record.count !== BigInt(grant.count)) throw new Error(`cycle ${cycle}: grant ${grant.requestId} acknowledged ${grant.count}, ledger says ${record.count}`);
    }
    const totals = await ledger.totals(uid);
    const sum = records.reduce((total, r) => total + r.count, 0n);
    if (sum !== totals.grantedToDevices) throw new Error(`cycle ${cycle}: grant records sum to ${sum}, the total says ${totals.grantedToDevices} (a grant counted twice or lost)`);
    if (totals.grantedToDevices > totals.allocatedFromUpstream) throw new Error(`cycle ${cycle}: ${totals.grantedToDevices} units granted to devices, only ${totals.allocatedFromUpstream} from the upstream`);
    const usage = (await client.getAttributes(uid, ['Usage Limits'])).attributes[0]!.value!;
    const usedAtServer = TOTAL - optionalValue(usage, Tag.UsageLimitsCount, ItemType.LongInteger)!;
    if (totals.allocatedFromUpstream > usedAtServer) throw new Error(`cycle ${cycle}: ledger records ${totals.allocatedFromUpstream} allocated, the server handed out ${usedAtServer}`);
    return { cycle, acked: acked.length, ...totals, usedAtServer };
  } finally {
    await store.close();
  }
}
