/**
 * Replays an OASIS KMIP test case against a server and compares each response with the expected
 * one, element by element, modulo what the test cases leave to the server: identifiers and
 * correlation values (bound on first sight, then required to stay the same), time stamps and
 * dates, key bytes, MACs, result messages and vendor strings.
 */
import { readFileSync } from 'node:fs';
import { SaxesParser } from 'saxes';
import { formatKmipXml, parseKmipXml } from '../../src/kmip/xml.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';

/** Elements whose values are the server's to choose (or depend on the clock or on random keys). */
const FREE_VALUES = new Set([
  'TimeStamp', 'ResultMessage', 'VendorIdentification', 'KeyMaterial', 'KeyValue', 'MACSignature', 'IVCounterNonce',
  'AsynchronousCorrelationValue', 'Data', 'MACData', 'DigestValue', 'ServerCorrelationValue',
  // Server policy, not protocol: how long a lease the server grants.
  'LeaseTime',
]);
/** Placeholders that name a new value each time they appear (one per asynchronous operation). */
const REBINDABLE = /^\$(ASYNCHRONOUS_CORRELATION_VALUE|CORRELATION_VALUE)$/;

interface Element {
  depth: number;
  name: string;
  type: string;
  value: string | undefined;
}

function elements(xml: string): Element[] {
  const parser = new SaxesParser({ xmlns: false });
  const out: Element[] = [];
  let depth = 0;
  parser.on('opentag', (node) => {
    depth++;
    const attributes = node.attributes as Record<string, string | undefined>;
    out.push({ depth, name: node.name === 'TTLV' ? `TTLV ${attributes.tag}` : node.name, type: attributes.type ?? 'Structure', value: attributes.value });
  });
  parser.on('closetag', () => void depth--);
  parser.write(xml).close();
  return out;
}

/**
 * Drops the contents of Query response payloads: which operations and object types a server
 * lists is the server's own (KMIP 1.2 §4.25), not something a test case can expect.
 */
function withoutQueryPayloads(list: Element[]): Element[] {
  const out: Element[] = [];
  let queryItemDepth = -1;
  let skipBelow = -1;
  for (const element of list) {
    if (skipBelow >= 0 && element.depth > skipBelow) continue;
    skipBelow = -1;
    if (element.name === 'Operation' && element.value === 'Query') queryItemDepth = element.depth;
    if (element.name === 'BatchItem') queryItemDepth = -1;
    out.push(element);
    if (element.name === 'ResponsePayload' && element.depth === queryItemDepth) skipBelow = element.depth;
  }
  return out;
}

/** The Batch Items of a message: pushed requests are compared from there (their headers differ by design). */
function batchItems(list: Element[]): Element[] {
  const start = list.findIndex((e) => e.name === 'BatchItem');
  return start < 0 ? list : list.slice(start);
}

/**
 * Attribute structures of one payload sorted by Attribute Name (stable): the order in which a
 * server lists an object's attributes carries no meaning in KMIP 1.x.
 */
function attributesByName(list: Element[]): Element[] {
  const out: Element[] = [];
  for (let i = 0; i < list.length; ) {
    const element = list[i]!;
    if (element.name !== 'Attribute') {
      out.push(element);
      i++;
      continue;
    }
    const groups: Element[][] = [];
    while (i < list.length && list[i]!.name === 'Attribute' && list[i]!.depth === element.depth) {
      const group = [list[i]!];
      for (i++; i < list.length && list[i]!.depth > element.depth; i++) group.push(list[i]!);
      groups.push(group);
    }
    const nameOf = (group: Element[]) => (group.find((e) => e.name === 'AttributeName')?.value ?? '').replace(/\s+/g, ' ');
    groups.sort((a, b) => (nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0));
    for (const group of groups) out.push(...group);
  }
  return out;
}

function maskSet(value: string): string {
  return value.split(/\s+/).filter(Boolean).sort().join(' ');
}

export interface ReplayResult {
  file: string;
  exchanges: number;
  /** Undefined when every response matched. */
  failure: string | undefined;
}

export type Exchange = (request: Uint8Array) => Promise<Uint8Array> | Uint8Array;

/** For cases with server-to-client messages: make the server Put, and take what it sent next. */
export interface PushProbe {
  triggerPut(uid: string): Promise<void>;
  /** The next request the server pushed (waits a little), or undefined. */
  next(): Promise<Uint8Array | undefined>;
}

/** Replays `file` (a path) through `exchange` (and `pushes`, for Put/Notify cases). */
export async function replayTestCase(file: string, exchange: Exchange, pushes?: PushProbe, now: () => Date = () => new Date()): Promise<ReplayResult> {
  const text = readFileSync(file, 'utf8');
  const messages = [...text.matchAll(/(?:# \[(Client-to-Server|Server-to-Client)\]\s*)?<(RequestMessage|ResponseMessage)>[\s\S]*?<\/\2>/g)].map((m) => ({
    // Files without direction markers (TC-NP-1-14): Put and Notify requests come from the server.
    direction: m[1] ?? (m[2] === 'RequestMessage' && /value="(Put|Notify)"/.test(m[0]) ? 'Server-to-Client' : 'Client-to-Server'),
    kind: m[2]!,
    xml: m[0].replace(/^# \[[^\]]*\]\s*/, ''),
  }));
  const bindings = new Map<string, string>();
  let exchanges = 0;
  for (let i = 0; i < messages.length; i++) {
    const request = messages[i]!;
    const expected = messages[i + 1];
    if (request.kind !== 'RequestMessage' || expected?.kind !== 'ResponseMessage') {
      return { file, exchanges, failure: `message ${i} is not a request followed by a response` };
    }
    i++;
    if (request.direction === 'Server-to-Client') {
      // The server produces this request (Put or Notify); the client's answer is not the server's to match.
      if (!pushes) return { file, exchanges, failure: 'the case has server-to-client messages and no push listener was given' };
      const operation = /<Operation type="Enumeration" value="(\w+)"/.exec(request.xml)?.[1];
      const uidPlaceholder = /<UniqueIdentifier type="TextString" value="(\$UNIQUE_IDENTIFIER_\d+)"/.exec(request.xml)?.[1];
      const uid = uidPlaceholder === undefined ? undefined : bindings.get(uidPlaceholder);
      if (operation === 'Put') {
        if (uid === undefined) return { file, exchanges, failure: `Put of an unknown object ${uidPlaceholder}` };
        await pushes.triggerPut(uid);
      }
      const received = await pushes.next();
      if (received === undefined) return { file, exchanges, failure: `exchange ${exchanges + 1}: the server sent no ${operation}` };
      const mismatch = compare(attributesByName(batchItems(elements(request.xml))), attributesByName(batchItems(elements(formatKmipXml(decodeTtlv(received))))), bindings);
      exchanges++;
      if (mismatch) return { file, exchanges, failure: `exchange ${exchanges} (${operation} from the server): ${mismatch}` };
      continue;
    }
    let requestXml: string;
    try {
      requestXml = request.xml.replace(/value="\$([A-Z_]+?)(?:_?(\d+))?([+-]\d+)?"/g, (_m, name: string, index: string | undefined, delta: string | undefined) => {
        const key = `$${name}${index === undefined ? '' : `_${index}`}`;
        if (name === 'NOW') return `value="${new Date(now().getTime() + Number(delta ?? 0) * 1000).toISOString().replace(/\.\d+Z$/, '+00:00')}"`;
        const bound = bindings.get(key);
        if (bound !== undefined) return `value="${bound}"`;
        if (name === 'UNIQUE_IDENTIFIER') throw new Error(`request ${exchanges} uses ${key} before any response named it`);
        const filler = Buffer.from(key).toString('hex').padEnd(32, '0').slice(0, 32);
        bindings.set(key, filler);
        return `value="${filler}"`;
      });
    } catch (error) {
      return { file, exchanges, failure: (error as Error).message };
    }
    const response = decodeTtlv(await exchange(encodeTtlv(parseKmipXml(requestXml))));
    const mismatch = compare(withoutQueryPayloads(elements(expected.xml)), withoutQueryPayloads(elements(formatKmipXml(response))), bindings);
    exchanges++;
    if (mismatch) return { file, exchanges, failure: `exchange ${exchanges}: ${mismatch}` };
  }
  return { file, exchanges, failure: undefined };
}

/** The first difference between expected and actual elements, or undefined. */
function compare(expected: Element[], actual: Element[], bindings: Map<string, string>): string | undefined {
  const where = (e: Element | undefined) => (e ? `<${e.name} type=${e.type} value=${e.value ?? ''}> at depth ${e.depth}` : 'nothing');
  for (let i = 0; i < Math.max(expected.length, actual.length); i++) {
    const e = expected[i];
    const a = actual[i];
    if (!e || !a || e.name !== a.name || e.type !== a.type || e.depth !== a.depth) return `expected ${where(e)}, got ${where(a)}`;
    if (e.value === undefined || e.value === a.value) continue;
    if (a.value === undefined) return `expected ${where(e)}, got no value`;
    const placeholder = /^\$[A-Z]+(?:_[A-Z]+)*(?:_\d+)?/.exec(e.value)?.[0];
    if (placeholder) {
      if (e.type === 'DateTime') continue;
      const bound = bindings.get(placeholder);
      if (bound === undefined || REBINDABLE.test(placeholder)) bindings.set(placeholder, a.value);
      else if (bound !== a.value) return `${placeholder} was ${bound}, now ${a.value} in ${where(a)}`;
      continue;
    }
    if (FREE_VALUES.has(e.name) || e.type === 'DateTime') continue;
    if (e.type === 'Integer' && /[A-Za-z]/.test(e.value) && maskSet(e.value) === maskSet(a.value)) continue;
    if (e.value.toLowerCase() === a.value.toLowerCase()) continue;
    // Some OASIS files carry stray runs of spaces inside names ("Unique   Identifier").
    if (e.type === 'TextString' && e.value.replace(/\s+/g, ' ') === a.value) continue;
    return `expected ${where(e)}, got value ${a.value}`;
  }
  return undefined;
}

/** The first difference between an expected message (KMIP XML, placeholders free) and `actual`, or undefined. */
export function messageMismatch(expectedXml: string, actual: Uint8Array): string | undefined {
  return compare(elements(expectedXml), elements(formatKmipXml(decodeTtlv(actual))), new Map());
}

/** The Put and Notify requests a test case has the server send, each with the response it expects. */
export function serverToClientExchanges(file: string): { request: string; response: string }[] {
  const text = readFileSync(file, 'utf8');
  const blocks = [...text.matchAll(/(?:# \[(Client-to-Server|Server-to-Client)\]\s*)?<(RequestMessage|ResponseMessage)>[\s\S]*?<\/\2>/g)];
  const out: { request: string; response: string }[] = [];
  for (let i = 0; i + 1 < blocks.length; i++) {
    const [block, marker, kind] = blocks[i]!;
    const push = marker === 'Server-to-Client' || (marker === undefined && kind === 'RequestMessage' && /value="(Put|Notify)"/.test(block));
    if (kind === 'RequestMessage' && push) out.push({ request: block.replace(/^# \[[^\]]*\]\s*/, ''), response: blocks[i + 1]![0].replace(/^# \[[^\]]*\]\s*/, '') });
  }
  return out;
}
