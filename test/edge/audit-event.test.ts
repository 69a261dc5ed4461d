/**
 * The audit event written by hand (src/edge/audit-event.ts) is the line pino writes for the same
 * fields: compared field by field and in order (the time aside), for each shape an event takes.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { KMIP_VERSIONS } from '../../src/kmip/message.ts';
import { AUDIT_MESSAGE, writeAuditEvent, writeGetSuccessEvent, type AuditEvent } from '../../src/edge/audit-event.ts';
import { requestIdText } from '../../src/edge/principal.ts';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, gatheredLinesOf, logDestination, silentLogger } from '../../src/log.ts';

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

it('a Get answered Success (the hot path): the line writeAuditEvent and pino write for it, for any client, request id and identifier', () => {
  const gets = [
    { client: 'lib-1', requestId: 'lib-1:boot:1:1', version: { major: 1, minor: 2 }, uid: '42' },
    { client: 'lib-"quoted"\\', requestId: 'r\u2028\n', version: { major: 1, minor: 4 }, uid: 'é€😀' },
  ];
  for (const { client, requestId, version, uid } of gets) {
    // Twice through one logger: the second line uses what the first put together.
    const ours = lines((log) => {
      writeGetSuccessEvent(log, client, requestId, version, uid);
      writeGetSuccessEvent(log, client, requestId, version, uid);
    });
    const general = lines((log) => writeAuditEvent(log, { client, requestId, version, items: [{ operation: 'Get', uid, status: 'Success' }] }));
    const pinos = lines((log) => log.info({ event: 'kmip_client_request', client, requestId, version: `${version.major}.${version.minor}`, items: [{ operation: 'Get', uid, status: 'Success' }] }, AUDIT_MESSAGE));
    assert.equal(ours.length, 2);
    for (const line of ours) {
      assert.equal(withoutTime(line), withoutTime(general[0]!));
      assert.equal(withoutTime(line), withoutTime(pinos[0]!));
    }
  }
  assert.deepEqual(lines((log) => writeGetSuccessEvent(log, 'lib-1', 'r', { major: 1, minor: 2 }, '42'), 'warn'), []);
  writeGetSuccessEvent(silentLogger, 'lib-1', 'r', { major: 1, minor: 2 }, '42');
});

it('what every line of a client starts with follows the logger: a child logger and setBindings change it', () => {
  const written: string[] = [];
  const log = createLogger({ level: 'info' }, { write: (line: string) => void written.push(line) });
  const child = log.child({ door: 'kmip' });
  writeGetSuccessEvent(log, 'lib-1', 'r1', { major: 1, minor: 2 }, '42');
  writeGetSuccessEvent(child, 'lib-1', 'r2', { major: 1, minor: 2 }, '42');
  log.setBindings({ site: 'branch-7' });
  writeGetSuccessEvent(log, 'lib-1', 'r3', { major: 1, minor: 2 }, '42');
  const read = written.map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(read.map((line) => [line.requestId, line.door, line.site]), [['r1', undefined, undefined], ['r2', 'kmip', undefined], ['r3', undefined, 'branch-7']]);
});

it('to the agent\'s JSON lines destination the line goes as bytes: the same line, in order with the others, escaped ones by the string path, bursts beyond the buffer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-audit-'));
  const file = join(dir, 'log');
  const fd = openSync(file, 'w');
  try {
    const log = createLogger({ level: 'info' }, await logDestination(fd, false));
    assert.ok(gatheredLinesOf(log), 'the JSON lines destination takes bytes');
    const gets = [
      { client: 'lib-1', requestId: 'lib-1:0a1b2c:3:4', version: { major: 1, minor: 2 }, uid: '6f1c0b8e-5d4a-4e2b-9c3d-1a2b3c4d5e6f' },
      { client: 'lib-1', requestId: 'quote"d', version: { major: 1, minor: 0 }, uid: '42' }, // escaped: the string path
      { client: 'lib-é', requestId: 'r', version: { major: 1, minor: 4 }, uid: 'é€😀' }, // a non-ASCII client in the head's bytes, a non-ASCII identifier by the string path
      { client: 'lib-2', requestId: 'back\\slash', version: { major: 1, minor: 3 }, uid: 'u' },
      { client: 'lib-3', requestId: 'r', version: { major: 2, minor: 1 }, uid: 'v' }, // a version with no prepared bytes
      ...KMIP_VERSIONS.map((version) => ({ client: 'lib-4', requestId: 'r', version, uid: 'k' })), // the versions' own objects: their prepared bytes
    ];
    const expected: string[] = [];
    for (let round = 0; round < 1000; round++) { // ~300 KB: several buffers' worth
      const { client, requestId, version, uid } = gets[round % gets.length]!;
      writeGetSuccessEvent(log, client, `${requestId}#${round}`, version, uid);
      expected.push(lines((other) => writeAuditEvent(other, { client, requestId: `${requestId}#${round}`, version, items: [{ operation: 'Get', uid, status: 'Success' }] }))[0]!);
      if (round % 100 === 0) {
        log.info({ event: 'between', round }, 'another line');
        expected.push(lines((other) => other.info({ event: 'between', round }, 'another line'))[0]!);
      }
    }
    log.flush();
    const written = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    assert.equal(written.length, expected.length);
    written.forEach((line, index) => assert.equal(withoutTime(line), withoutTime(expected[index]!), `line ${index}`));
    for (const line of written) assert.ok(Math.abs((JSON.parse(line) as { time: number }).time - Date.now()) < 60_000, line); // the time's digits too
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

it('a request id in its parts (the door\'s prefix and count): the line its text gives, every digit, to either destination; a prefix JSON escapes by the string path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-audit-'));
  const file = join(dir, 'log');
  const fd = openSync(file, 'w');
  const sequences = [1, 9, 10, 99, 100, 123_456_789, 1_000_000_000, 4_294_967_296, 2 ** 53 - 1];
  const prefixes = ['lib-1:0a1b2c3d4e5f:7:', 'lib-1:0a1b2c3d4e5f:8:', 'quote"d:1:', 'é:2:'];
  const ids = prefixes.flatMap((prefix) => sequences.map((sequence) => ({ prefix, sequence })));
  const uid = '6f1c0b8e-5d4a-4e2b-9c3d-1a2b3c4d5e6f';
  try {
    const gathered = createLogger({ level: 'info' }, await logDestination(fd, false));
    for (const id of ids) writeGetSuccessEvent(gathered, 'lib-1', id, { major: 1, minor: 2 }, uid);
    gathered.flush();
    const streamed = lines((log) => ids.forEach((id) => writeGetSuccessEvent(log, 'lib-1', id, { major: 1, minor: 2 }, uid)));
    const expected = ids.map((id) => lines((log) => writeGetSuccessEvent(log, 'lib-1', requestIdText(id), { major: 1, minor: 2 }, uid))[0]!);
    const written = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    assert.equal(written.length, ids.length);
    assert.equal(streamed.length, ids.length);
    ids.forEach((id, index) => {
      assert.equal((JSON.parse(written[index]!) as { requestId: string }).requestId, `${id.prefix}${id.sequence}`);
      assert.equal(withoutTime(written[index]!), withoutTime(expected[index]!), `bytes, ${requestIdText(id)}`);
      assert.equal(withoutTime(streamed[index]!), withoutTime(expected[index]!), `string, ${requestIdText(id)}`);
    });
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

it('the time of a line as bytes is the clock\'s, every digit: zeros inside and at the end, 32 bits and beyond', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-audit-'));
  const fd = openSync(join(dir, 'log'), 'w');
  const clock = Date.now;
  const times = [1_764_800_000_000, 1_764_000_000_009, 1_000_000_000_000, 999_999_999, 1_000_000_000, 4_294_967_296, 10, 0, 2 ** 53 - 1];
  try {
    const log = createLogger({ level: 'info' }, await logDestination(fd, false));
    for (const time of times) {
      Date.now = () => time;
      writeGetSuccessEvent(log, 'lib-1', 'r', { major: 1, minor: 2 }, '42');
    }
    Date.now = clock;
    log.flush();
    const written = readFileSync(join(dir, 'log'), 'utf8').split('\n').filter(Boolean);
    assert.deepEqual(written.map((line) => (JSON.parse(line) as { time: number }).time), times);
  } finally {
    Date.now = clock;
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});
