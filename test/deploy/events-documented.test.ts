/**
 * Every log event of the local KMIP endpoint and its key pool (src/edge, src/endpoint) is in
 * deploy/README.md's events table, by its stable name: an operator reading `journalctl` finds
 * what each one means. The names are read from the source (`event: 'name'`), so a new event
 * without its row fails here.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { ROOT } from '../helpers/cli.ts';

function eventsIn(folder: string): Set<string> {
  const events = new Set<string>();
  for (const file of readdirSync(join(ROOT, folder)).filter((name) => name.endsWith('.ts'))) {
    for (const match of readFileSync(join(ROOT, folder, file), 'utf8').matchAll(/event: '([a-z_]+)'/g)) events.add(match[1]!);
  }
  return events;
}

it('deploy/README.md names every event that src/edge and src/endpoint log', () => {
  const readme = readFileSync(join(ROOT, 'deploy/README.md'), 'utf8');
  const events = [...new Set([...eventsIn('src/edge'), ...eventsIn('src/endpoint')])];
  assert.ok(events.length >= 30, `the events were read from the source: ${events.length}`);
  assert.deepEqual(events.filter((event) => !readme.includes(`\`${event}\``)).sort(), [], 'events missing from deploy/README.md');
});
