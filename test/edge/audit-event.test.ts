/**
 * The audit event written by hand (src/edge/audit-event.ts) is the line pino writes for the same
 * fields: compared field by field and in order (the time aside), for each shape an event takes.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { AUDIT_MESSAGE, writeAuditEvent, type AuditEvent } from '../../src/edge/audit-event.ts';
import { createLogger, silentLogger } from '../../src/log.ts';

function lines(write: (log: ReturnType<typeof createLogger>) => void, level = 'info'): string[] {
  const written: string[] = [];
  write(createLogger({ level }, { write: (line: string) => void written.push(line) }));
  return written;
}

const withoutTime = (line: string): string => {
  const { time, ...rest } = JSON.parse(line) as Record<string, unknown>;
  assert.equal(typeof time, 'number');
  return JSON.stringify(rest);
};

const events: AuditEvent[] = [
  { client: 'lib-1', requestId: 'lib-1:boot:1:1', version: { major: 1, minor: 2 }, items: [{ operation: 'Get', uid: '42', status: 'Success' }] },
  { client: 'lib-"quoted"\\', requestId: 'r\u2028\n', version: { major: 1, minor: 0 }, items: [{ operation: 'Locate', status: 'Success' }, { operation: 'Get', uid: 'é€😀', status: 'OperationFailed', reason: 'ItemNotFound' }] },
  { client: 'lib-2', requestId: 'r', invalid: true, items: [] },
  { client: 'lib-2', requestId: 'r', items: [{ status: 'OperationFailed', reason: 'InvalidMessage' }] },
];

it('each shape of event: the line pino writes for the same fields, in the same order', () => {
  for (const event of events) {
    const ours = lines((log) => writeAuditEvent(log, event));
    const fields = {
      event: 'kmip_client_request', client: event.client, requestId: event.requestId,
      ...(event.version && { version: `${event.version.major}.${event.version.minor}` }), ...(event.invalid && { invalid: true }),
      items: event.items,
    };
    const pinos = lines((log) => log.info(fields, AUDIT_MESSAGE));
    assert.equal(ours.length, 1);
    assert.ok(ours[0]!.endsWith('}\n'));
    assert.equal(withoutTime(ours[0]!), withoutTime(pinos[0]!), JSON.stringify(event));
  }
});

it('nothing is written below the info level, nor by the silent logger', () => {
  assert.deepEqual(lines((log) => writeAuditEvent(log, events[0]!), 'warn'), []);
  writeAuditEvent(silentLogger, events[0]!); // no stream to write to: must not throw either
});
