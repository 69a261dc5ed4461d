/**
 * The audit event of a local KMIP client's request (issue #16; deploy/README.md: `kmip_client_request`,
 * info): who asked, and per batch item the operation, the key and the result — never key material
 * nor attribute values.
 *
 * It is the line `log.info(fields, 'local KMIP client request')` writes — the same fields in the
 * same order, through the logger's own destination — put together here rather than by pino's
 * generic serializer, because it is written for every request: 4.7 µs a line through log.info,
 * 1.3–1.7 µs this way (200,000 lines to a null stream), against the ~20–40 µs of server CPU a
 * cached Get costs over TLS (`bench kmip-endpoint`).
 * test/edge/audit-event.test.ts compares the two. Its fields are identifiers and enumeration
 * names, none of them a secret field, so the logger's redaction has nothing to do here.
 */
import { pino } from 'pino';
import type { ProtocolVersion } from '../kmip/message.ts';
import type { Logger } from '../log.ts';

export interface AuditedItem {
  operation?: string | undefined;
  uid?: string | undefined;
  status: string;
  reason?: string | undefined;
}

export interface AuditEvent {
  client: string;
  requestId: string;
  version?: ProtocolVersion | undefined;
  invalid?: boolean;
  items: readonly AuditedItem[];
}

export const AUDIT_MESSAGE = 'local KMIP client request';

/** Characters a JSON string holds as they are (no quote, backslash, control or non-ASCII character). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const text = (value: string): string => (PLAIN.test(value) ? `"${value}"` : JSON.stringify(value));
const INFO = pino.levels.values.info!;

export function writeAuditEvent(log: Logger, event: AuditEvent): void {
  if (!log.isLevelEnabled('info')) return;
  const internals = log as unknown as Record<symbol, unknown>;
  const stream = internals[pino.symbols.streamSym] as { write(line: string): void };
  const bindings = internals[pino.symbols.chindingsSym] as string; // `,"pid":…,"hostname":…,"name":…`
  let line = `{"level":${INFO},"time":${Date.now()}${bindings},"event":"kmip_client_request","client":${text(event.client)},"requestId":${text(event.requestId)}`;
  if (event.version) line += `,"version":"${event.version.major}.${event.version.minor}"`;
  if (event.invalid) line += ',"invalid":true';
  line += ',"items":[';
  for (let index = 0; index < event.items.length; index++) {
    const item = event.items[index]!;
    if (index > 0) line += ',';
    line += '{';
    if (item.operation !== undefined) line += `"operation":${text(item.operation)},`;
    if (item.uid !== undefined) line += `"uid":${text(item.uid)},`;
    line += `"status":${text(item.status)}`;
    if (item.reason !== undefined) line += `,"reason":${text(item.reason)}`;
    line += '}';
  }
  stream.write(`${line}],"msg":"${AUDIT_MESSAGE}"}\n`);
}
