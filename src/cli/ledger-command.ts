/**
 * `kmip-edge ledger --data DIR [--json]` (CLI.md): per key, the units allocated by the upstream,
 * granted to devices, remaining, and per device. Reads the store of a stopped agent, or asks the
 * running agent that holds it (LevelDB admits one process at a time) through its admin socket.
 */
import { parseArgs } from 'node:util';
import { Ledger } from '../agent/ledger.ts';
import { withAgentStore } from './agent-store.ts';

export interface LedgerRow {
  uniqueIdentifier: string;
  allocatedFromUpstream: number;
  grantedToDevices: number;
  remaining: number;
  perDevice: Record<string, number>;
}

/** The ledger's totals and grants per key (the running agent passes its own Ledger: live totals). */
export async function ledgerRows(ledger: Ledger): Promise<LedgerRow[]> {
  const rows: LedgerRow[] = [];
  for (const uid of await ledger.keyIds()) {
    const totals = await ledger.totals(uid);
    const perDevice: Record<string, number> = {};
    for (const grant of await ledger.grants(uid)) perDevice[grant.device] = (perDevice[grant.device] ?? 0) + Number(grant.count);
    rows.push({
      uniqueIdentifier: uid,
      allocatedFromUpstream: Number(totals.allocatedFromUpstream),
      grantedToDevices: Number(totals.grantedToDevices),
      remaining: Number(totals.allocatedFromUpstream - totals.grantedToDevices),
      perDevice,
    });
  }
  return rows;
}

export async function runLedgerCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parseArgs({ args, options: { data: { type: 'string' }, json: { type: 'boolean', default: false } }, strict: true });
  const keys = await withAgentStore(
    values.data, 'ledger',
    (store) => ledgerRows(new Ledger({ store, allocate: async () => { throw new Error('read only'); } })),
    'ledger', (answer) => (answer as { keys: LedgerRow[] }).keys,
  );
  if (values.json) out(JSON.stringify({ keys }) + '\n');
  else {
    if (keys.length === 0) out('no usage allocations recorded\n');
    for (const key of keys) {
      out(`${key.uniqueIdentifier}: ${key.allocatedFromUpstream} allocated from upstream, ${key.grantedToDevices} granted to devices, ${key.remaining} remaining\n`);
      for (const [device, units] of Object.entries(key.perDevice)) out(`  ${device}: ${units}\n`);
    }
  }
  return 0;
}
