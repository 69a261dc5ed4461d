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
import { KMIP_VERSIONS, type ProtocolVersion } from '../kmip/message.ts';
import { destinationOf, gatheredLinesOf, type GatheredLines, type Logger } from '../log.ts';
import { requestIdText, type RequestId } from './principal.ts';

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

/** The event of one request: one line, written at the info level. */
export function writeAuditEvent(log: Logger, event: AuditEvent): void {
  const head = lineHead(log, event.client);
  if (head === undefined) return;
  let line = `{"level":${INFO},"time":${Date.now()}${head.text}${text(event.requestId)}`;
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
  destinationOf(log).write(`${line}],"msg":"${AUDIT_MESSAGE}"}\n`);
}

const GET_ITEM = ',"items":[{"operation":"Get","uid":';
const GET_SUCCESS_END = `,"status":"Success"}],"msg":"${AUDIT_MESSAGE}"}\n`;

/**
 * The event of a Get answered Success, the tape library's hot path: the line writeAuditEvent
 * writes for `{ client, requestId, version, items: [{ operation: 'Get', uid, status: 'Success' }] }`,
 * without building the event: the service's cached Get took 2.6–3.0 µs with the general event,
 * 2.1–2.3 µs with this one, 1.2–1.5 µs with none (200,000 Gets each, bundled, same run). To the
 * agent's JSON lines destination (src/log.ts GatheredLines) its bytes go straight into the buffer
 * the lines are gathered in, with no string made: at the endpoint, over TLS, the line and its
 * write were 2–5 µs of a request's ~25 µs (pairs of listeners in one run, `bench kmip-endpoint`).
 * `time`: the clock's reading the response's Time Stamp took (one reading for both).
 */
export function writeGetSuccessEvent(log: Logger, client: string, requestId: string | RequestId, version: ProtocolVersion, uid: string, time: number = Date.now()): void {
  const head = lineHead(log, client);
  if (head === undefined) return;
  if (head.sink !== undefined && putGetSuccess(head.sink, head.bytes, time, requestId, version, uid)) return;
  destinationOf(log).write(`{"level":${INFO},"time":${time}${head.text}${text(requestIdText(requestId))},"version":"${version.major}.${version.minor}"${GET_ITEM}${text(uid)}${GET_SUCCESS_END}`);
}

const LINE_START = Buffer.from(`{"level":${INFO},"time":`);
const GET_SUCCESS_END_BYTES = Buffer.from(GET_SUCCESS_END);
/** Room for a number written by putNumber. */
const NUMBER_ROOM = 24;

/** The line as bytes into `sink`; false, with nothing written, when the request id or the identifier needs escaping (the string path then). */
function putGetSuccess(sink: GatheredLines, head: Buffer, time: number, requestId: string | RequestId, version: ProtocolVersion, uid: string): boolean {
  const versionItem = versionAndGetItem(version);
  const prefix = typeof requestId === 'string' ? undefined : prefixBytes(requestId.prefix);
  if (prefix === null) return false;
  const idRoom = prefix === undefined ? (requestId as string).length + 2 : prefix.length + NUMBER_ROOM + 1;
  const room = LINE_START.length + NUMBER_ROOM + head.length + idRoom + versionItem.length + uid.length + 2 + GET_SUCCESS_END_BYTES.length;
  let at = sink.reserve(room);
  if (at < 0) return false;
  const b = sink.gathered;
  at = putBytes(b, at, LINE_START);
  at = putNumber(b, at, time);
  at = putBytes(b, at, head);
  if (prefix === undefined) {
    at = putPlainString(b, at, requestId as string);
    if (at < 0) return false;
  } else {
    at = putNumber(b, putBytes(b, at, prefix), (requestId as RequestId).sequence);
    b[at++] = 0x22;
  }
  at = putBytes(b, at, versionItem);
  at = putPlainString(b, at, uid);
  if (at < 0) return false;
  sink.commit(putBytes(b, at, GET_SUCCESS_END_BYTES));
  return true;
}

/** `,"version":"M.m","items":[{"operation":"Get","uid":` of each version served, by its object in KMIP_VERSIONS (what readPlainGet names): made once each. */
const VERSION_AND_GET_ITEM = new Map(KMIP_VERSIONS.map((version) => [version, versionAndGetItemOf(version)]));

function versionAndGetItem(version: ProtocolVersion): Buffer {
  return VERSION_AND_GET_ITEM.get(version) ?? versionAndGetItemOf(version);
}

function versionAndGetItemOf(version: ProtocolVersion): Buffer {
  return Buffer.from(`,"version":"${version.major}.${version.minor}"${GET_ITEM}`);
}

/**
 * `"prefix` (the opening quote and the prefix) of each request id prefix seen — one per
 * connection of the local KMIP door — or null for one JSON must escape (the string path then).
 * At most MAX_PREFIXES kept: connections come and go.
 */
const prefixes = new Map<string, Buffer | null>();
const MAX_PREFIXES = 1024;

function prefixBytes(prefix: string): Buffer | null {
  let bytes = prefixes.get(prefix);
  if (bytes === undefined) {
    if (prefixes.size >= MAX_PREFIXES) prefixes.clear();
    bytes = PLAIN.test(prefix) ? Buffer.from(`"${prefix}`, 'latin1') : null;
    prefixes.set(prefix, bytes);
  }
  return bytes;
}

function putBytes(b: Buffer, at: number, bytes: Buffer): number {
  b.set(bytes, at);
  return at + bytes.length;
}

/** A number as JSON writes it (at most NUMBER_ROOM bytes). */
function putNumber(b: Buffer, at: number, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) return at + b.write(String(value), at, 'latin1');
  if (value < 1e9) return putDigits(b, at, value, digitCount(value));
  // A time in milliseconds is beyond 32 bits: its last nine digits, and what is before them.
  const high = Math.floor(value / 1e9);
  return putDigits(b, putNumber(b, at, high), value - high * 1e9, 9);
}

/** `value` (below 1e9: 32-bit integer arithmetic) as `digits` decimal digits, zeros in front. */
function putDigits(b: Buffer, at: number, value: number, digits: number): number {
  for (let i = at + digits - 1; i >= at; i--) {
    const rest = (value / 10) | 0;
    b[i] = 0x30 + value - rest * 10;
    value = rest;
  }
  return at + digits;
}

function digitCount(value: number): number {
  let digits = 1;
  for (let rest = value; rest >= 10; rest = (rest / 10) | 0) digits++;
  return digits;
}

/** `"value"` when JSON holds every character of it as it is (PLAIN), else -1. */
function putPlainString(b: Buffer, at: number, value: string): number {
  b[at++] = 0x22;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return -1;
    b[at++] = c;
  }
  b[at++] = 0x22;
  return at;
}

interface LineHead {
  bindings: string;
  /** The head as text, and as the UTF-8 bytes of it. */
  text: string;
  bytes: Buffer;
  sink: GatheredLines | undefined;
}

/**
 * What every event of `client` through `log` starts with after the time — the logger's bindings
 * (`,"pid":…,"hostname":…,"name":…`), the event name and the client — up to the request id's
 * value; undefined below the info level. Put together once per logger and client: a site has a
 * handful of clients; MAX_HEADS bounds what a stream of ids could make it keep.
 */
function lineHead(log: Logger, client: string): LineHead | undefined {
  if (!log.isLevelEnabled('info')) return undefined;
  const bindings = (log as unknown as Record<symbol, unknown>)[pino.symbols.chindingsSym] as string;
  let heads = headsOf.get(log);
  if (heads === undefined) headsOf.set(log, (heads = new Map()));
  const known = heads.get(client);
  if (known !== undefined && known.bindings === bindings) return known; // setBindings makes a new string
  if (heads.size >= MAX_HEADS) heads.clear();
  const head = `${bindings},"event":"kmip_client_request","client":${text(client)},"requestId":`;
  const made = { bindings, text: head, bytes: Buffer.from(head, 'utf8'), sink: gatheredLinesOf(log) };
  heads.set(client, made);
  return made;
}

const headsOf = new WeakMap<Logger, Map<string, LineHead>>();
const MAX_HEADS = 1024;
