/**
 * Reliability run of the ledger crash test (test/crash/ledger-crash.test.ts runs 10 cycles):
 *   npm run crash -- --cycles 100
 * Needs the built CLI (npm run build) for the development server.
 */
import { parseArgs } from 'node:util';
import { runLedgerCrashCycles } from '../test/helpers/ledger-crash.ts';

const { values } = parseArgs({ options: { cycles: { type: 'string', default: '100' } } });
const cycles = Number(values.cycles);
if (!(Number.isInteger(cycles) && cycles > 0)) throw new RangeError('--cycles must be a positive whole number');
const started = Date.now();
const reports = await runLedgerCrashCycles(cycles, (r) => {
  if (r.cycle % 10 === 0 || r.cycle === cycles) console.log(`cycle ${r.cycle}: ${r.acked} grants acknowledged; devices ${r.grantedToDevices} ≤ upstream ${r.allocatedFromUpstream} ≤ server ${r.usedAtServer}`);
});
const last = reports.at(-1)!;
console.log(
  `${cycles} SIGKILL cycles in ${((Date.now() - started) / 1000).toFixed(0)} s: every acknowledged grant found, none counted twice, no over-use. ` +
    `${last.usedAtServer - last.allocatedFromUpstream} units the server granted were lost to kills between its answer and the agent's record (at most one chunk per kill, never over-use); ` +
    `${last.allocatedFromUpstream - last.grantedToDevices} units are allocated to the agent and not yet granted to devices.`,
);
