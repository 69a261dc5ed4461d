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

/** Replays `file` (a path) through `exchange`. */
export async function replayTestCase(file: string, exchange: Exchange, now: () => Date = () => new Date()): Promise<ReplayResult> {
  const text = readFileSync(file, 'utf8');
  const messages = [...text.matchAll(/<(RequestMessage|ResponseMessage)>[\s\S]*?<\/\1>/g)].map((m) => ({ kind: m[1]!, xml: m[0] }));
  const bindings = new Map<string, string>();
  let exchanges = 0;
  for (let i = 0; i < messages.length; i++) {
    const request = messages[i]!;
    const expected = messages[i + 1];
    if (request.kind !== 'RequestMessage' || expected?.kind !== 'ResponseMessage') {
      return { file, exchanges, failure: `message ${i} is not a request followed by a response` };
    }
    i++;
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
