/**
 * The last-resort handlers of `kmip-edge run` (src/process-guard.ts), in a real child process:
 * an unhandled rejection is logged (event unhandled_rejection) and the process keeps running; an
 * uncaught exception is logged at fatal level and the process exits 70, for systemd to restart it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

it('unhandled rejection: logged, the process lives on; uncaught exception: logged, exit 70', () => {
  const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./guard-child.ts', import.meta.url))], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(child.status, 70, child.stderr);
  assert.match(child.stdout, /alive after the rejection/);
  assert.doesNotMatch(child.stdout, /never printed/);
  const lines = child.stderr.trim().split('\n').map((line) => JSON.parse(line) as { event?: string; level: number; reason?: string });
  assert.deepEqual(lines.map((l) => [l.event, l.level, l.reason]), [
    ['unhandled_rejection', 50, 'nobody waits for this'],
    ['uncaught_exception', 60, 'thrown in a timer callback'],
  ]);
});
