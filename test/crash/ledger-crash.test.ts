/**
 * Crash test with real processes: 10 cycles of SIGKILL at a random moment while a child grants
 * units as fast as it can. After each: every acknowledged grant is in the ledger, none counted
 * twice, device grants ≤ upstream grants ≤ what the development server says it handed out.
 * (`npm run crash -- --cycles 100` runs more.)
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runLedgerCrashCycles } from '../helpers/ledger-crash.ts';

it('10 SIGKILL cycles lose no acknowledged grant and never over-use', async (t) => {
  const reports = await runLedgerCrashCycles(10, (r) => t.diagnostic(`cycle ${r.cycle}: ${r.acked} grants acknowledged so far; devices ${r.grantedToDevices} ≤ upstream ${r.allocatedFromUpstream} ≤ server ${r.usedAtServer}`));
  assert.equal(reports.length, 10);
  assert.ok(reports.at(-1)!.acked > 100, 'the child got work done between kills');
  assert.ok(reports.every((r, i) => i === 0 || r.acked >= reports[i - 1]!.acked));
});
