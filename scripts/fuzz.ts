/**
 * Fuzzing of every parser: TTLV decode, the stream framer, KMIP XML, KMIP JSON, hex, device
 * frames, SLIP, server-pushed Put/Notify, devices' nonce-MAC requests, and the agent's YAML
 * configuration file (src/config/loader.ts, read from a file as `run --config` reads it).
 * Inputs are random and mutated versions of real messages (the OASIS corpus, when ../shared is
 * there). A parser may accept or refuse; refusing with anything but its coded error is a bug, and
 * so is accepting TTLV that does not re-encode to the same bytes.
 *
 *   npm run fuzz -- [--seconds 60]       time-boxed: seconds per parser (default 10)
 *   npm run fuzz -- --inputs 1000000     until each parser has had that many inputs
 *   npm run fuzz -- ... [--only NAME] [--json] [--seed N]
 *
 * Prints one line per parser with its execution count — with --json one JSON object per line:
 * {"parser","inputs","seconds","inputsPerSec","seed","finding"} (finding null, or the shrunk
 * counterexample and the error). Exit 0 if nothing was found, 1 if anything was, 2 for bad usage.
 */
import fc from 'fast-check';
import { parseArgs } from 'node:util';
import { isKmipEdgeError } from '../src/errors.ts';
import { formatKmipJson, parseKmipJson } from '../src/kmip/json.ts';
import { formatKmipXml, parseKmipXml, parseKmipXmlDocument } from '../src/kmip/xml.ts';
import { decodeTtlv } from '../src/ttlv/decode.ts';
import { encodeTtlv } from '../src/ttlv/encode.ts';
import { TtlvFramer } from '../src/ttlv/framer.ts';
import { fromHex, toHex } from '../src/ttlv/hex.ts';
import type { TtlvItem } from '../src/ttlv/item.ts';
import { MAX_FRAME_BYTES, openFrame, sealFrame, Suite } from '../src/devices/frame.ts';
import { SlipDecoder, slipEncode } from '../src/devices/slip.ts';
import { corpusFiles, readCorpusFile } from '../test/helpers/corpus.ts';
import { nameValue } from '../src/kmip/attributes.ts';
import { buildRequestMessage, parseRequestMessage } from '../src/kmip/message.ts';
import { notifyPayload, putPayload, readPush } from '../src/kmip/push.ts';
import { Operation, Tag } from '../src/kmip/tables.generated.ts';
import { byteString, enumeration, structure } from '../src/ttlv/build.ts';
import { nonceMacItems, readNonceMacItems } from '../src/upstream/nonce-mac.ts';
import { loadAgentConfig } from '../src/config/loader.ts';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function usage(message: string): never {
  process.stderr.write(`fuzz: ${message}\n`);
  process.exit(2);
}
let parsed;
try {
  parsed = parseArgs({ options: { seconds: { type: 'string' }, inputs: { type: 'string' }, only: { type: 'string', multiple: true }, json: { type: 'boolean', default: false }, seed: { type: 'string' } }, strict: true });
} catch (error) {
  usage((error as Error).message);
}
const { values } = parsed;
if (values.seconds !== undefined && values.inputs !== undefined) usage('--seconds and --inputs exclude each other: a time box or an input count per parser');
const seconds = Number(values.seconds ?? '10');
if (!(seconds > 0)) usage('--seconds must be a positive number');
const inputs = values.inputs === undefined ? undefined : Number(values.inputs);
if (inputs !== undefined && !(Number.isSafeInteger(inputs) && inputs > 0)) usage('--inputs must be a positive whole number');
const seed = values.seed === undefined ? undefined : Number(values.seed);
if (seed !== undefined && !Number.isSafeInteger(seed)) usage('--seed must be a whole number (a run prints its seed)');

const seeds: TtlvItem[] = corpusFiles().slice(0, 200).flatMap((f) => parseKmipXmlDocument(readCorpusFile(f)));
if (seeds.length === 0) console.error('fuzz: no corpus found beside the repository; fuzzing from random input only');
const seedBytes = seeds.map((item) => encodeTtlv(item));
const LIMITS = { maxMessageBytes: 64 * 1024, maxDepth: 16, maxItems: 4096, maxValueBytes: 16 * 1024, maxBigIntegerBytes: 1024 };

/** Runs `parse`; a coded KmipEdgeError is a clean refusal, anything else is a finding. */
function clean(parse: () => void): void {
  try {
    parse();
  } catch (error) {
    if (!isKmipEdgeError(error)) throw error;
  }
}

const mutatedBytes = fc
  .tuple(fc.constantFrom(...(seedBytes.length > 0 ? seedBytes : [new Uint8Array(8)])), fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 8 }), fc.nat(), fc.nat(3))
  .map(([seed, edits, cut, mode]) => {
    const bytes = Uint8Array.from(seed);
    for (const [position, value] of edits) bytes[position % bytes.length] = value;
    if (mode === 0) return bytes.subarray(0, cut % (bytes.length + 1));
    if (mode === 1) return Uint8Array.from([...bytes.subarray(0, cut % bytes.length), ...bytes.subarray(cut % bytes.length)].concat(edits.map(([, v]) => v)));
    return bytes;
  });
const anyBytes = fc.oneof(fc.uint8Array({ maxLength: 512 }), mutatedBytes);

function mutateText(text: string, edits: [number, string][], cut: number): string {
  let out = text;
  for (const [position, insert] of edits) {
    const at = position % (out.length + 1);
    out = out.slice(0, at) + insert + out.slice(at + 1);
  }
  return cut % 4 === 0 ? out.slice(0, cut % (out.length + 1)) : out;
}
const seedXml = seeds.slice(0, 300).map((item) => formatKmipXml(item));
const seedJson = seeds.slice(0, 300).map((item) => formatKmipJson(item));
const textEdit = fc.tuple(fc.nat(), fc.oneof(fc.string({ maxLength: 3 }), fc.constantFrom('<', '>', '"', '/>', '&', '&#0;', 'type="Integer"', '0x', '{', '}', '[', ']', ',', ':')));
const mutatedText = (seedsOf: string[]) =>
  fc.tuple(fc.constantFrom(...(seedsOf.length > 0 ? seedsOf : ['<BatchCount type="Integer" value="1"/>'])), fc.array(textEdit, { maxLength: 6 }), fc.nat()).map(([t, e, c]) => mutateText(t, e, c));

const FRAME_KEY = new Uint8Array(32).fill(7);
const validFrame = sealFrame({ suite: Suite.AES_256_GCM, direction: 'up', deviceId: 'fuzz-device', counter: 1n, replyTo: undefined }, FRAME_KEY, seedBytes[0] ?? new Uint8Array(16));
const mutatedFrame = fc.tuple(fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 6 }), fc.nat()).map(([edits, cut]) => {
  const bytes = Uint8Array.from(validFrame);
  for (const [position, value] of edits) bytes[position % bytes.length] = value;
  return bytes.subarray(0, cut % (bytes.length + 1));
});

/** Valid messages of a kind, mutated byte by byte and cut, as the parsers of that kind meet them. */
const mutatedFrom = (valid: Uint8Array[]) =>
  fc.tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 6 }), fc.nat(), fc.boolean()).map(([seed, edits, cut, whole]) => {
    const bytes = Uint8Array.from(seed);
    for (const [position, value] of edits) bytes[position % bytes.length] = value;
    return whole ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
  });
const keyObject = structure(Tag.SymmetricKey, [structure(Tag.KeyBlock, [enumeration(Tag.KeyFormatType, 1), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, new Uint8Array(32))])])]);
const pushMessages = [
  buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Put, payload: putPayload('k-1', keyObject, [{ name: 'Name', value: nameValue('n') }], 'k-0') }], { timeStamp: new Date(0) }),
  buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Notify, payload: notifyPayload('k-1', [{ name: 'Name' }, { name: 'State', value: enumeration(Tag.AttributeValue, 2) }]) }], { timeStamp: new Date(0) }),
].map((message) => encodeTtlv(message));
const nonceMacRequests = (['add', 'modify'] as const).map((setter) => encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, nonceMacItems('k-1', 'mac-1', new Uint8Array(16), setter), { batchOrderOption: true })));

/**
 * The configuration file: the deploy/ examples (valid), mutated with YAML's own syntax — anchors
 * and aliases, tags, flow collections, indentation — and random text. Each input is written to a
 * file and loaded as `run --config FILE` loads it; a ConfigError is the clean refusal.
 */
const deployDir = new URL('../deploy/', import.meta.url);
const seedYaml = existsSync(deployDir) ? readdirSync(deployDir).filter((f) => f.endsWith('.yaml')).map((f) => readFileSync(new URL(f, deployDir), 'utf8')) : [];
const yamlEdit = fc.tuple(fc.nat(), fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom(':', ': ', '- ', '\n', '\n  ', '  ', '\t', '#', '&a ', '*a', '<<: *a', '!!str ', '!!binary ', '!!js/function ', '{', '}', '[', ']', ',', '"', "'", '|', '>', '---\n', '...\n', '? ', '%YAML 1.2\n', '~', 'null', '0x10', '1e400', '-.inf', '.nan', 'true', '\u0000', '\ufeff')));
/**
 * The yaml package takes about a millisecond per kilobyte, so most inputs are small: each example's
 * top-level sections, comments dropped, alone and after the required `data` and `upstream`.
 */
const sectionsOf = (text: string) => text.replace(/^\s*#.*$/gm, '').replace(/\s+#.*$/gm, '').split(/\n(?=[^\s])/).map((section) => section.trim() + '\n').filter((section) => section.length > 1);
const required = (text: string) => sectionsOf(text).filter((section) => /^(data|upstream):/.test(section)).join('');
const seedSections = seedYaml.flatMap((text) => sectionsOf(text).flatMap((section) => [section, required(text) + section]));
const mutated = (texts: string[]) => fc.tuple(fc.constantFrom(...(texts.length > 0 ? texts : ['data: /tmp/x\nupstream:\n  address: h:5696\n'])), fc.array(yamlEdit, { maxLength: 8 }), fc.nat()).map(([t, e, c]) => mutateText(t, e, c));
const yamlInput = fc.oneof({ weight: 16, arbitrary: mutated(seedSections) }, { weight: 1, arbitrary: mutated(seedYaml) }, { weight: 2, arbitrary: fc.string({ maxLength: 200 }) });
const configDir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'kmip-edge-fuzz-config-'));
process.on('exit', () => rmSync(configDir, { recursive: true, force: true }));
const configFile = join(configDir, 'agent.yaml');
const NO_FLAGS = { values: new Map<string, unknown>(), flagOf: new Map<string, string>() };

const targets: [string, fc.IProperty<[unknown]>][] = [
  [
    'TTLV decode',
    fc.property(anyBytes, (bytes) =>
      clean(() => {
        const tree = decodeTtlv(bytes, LIMITS);
        if (toHex(encodeTtlv(tree)) !== toHex(bytes)) throw new Error('accepted bytes that do not re-encode identically');
      }),
    ) as fc.IProperty<[unknown]>,
  ],
  [
    'TTLV framer',
    fc.property(fc.array(anyBytes, { maxLength: 6 }), (chunks) =>
      clean(() => {
        const framer = new TtlvFramer(LIMITS.maxMessageBytes);
        for (const chunk of chunks) for (const message of framer.push(chunk)) decodeTtlv(message, LIMITS);
      }),
    ) as fc.IProperty<[unknown]>,
  ],
  ['KMIP XML', fc.property(fc.oneof(mutatedText(seedXml), fc.string({ maxLength: 200 })), (text) => clean(() => parseKmipXml(text, { maxDepth: 16, maxItems: 4096 }))) as fc.IProperty<[unknown]>],
  ['KMIP JSON', fc.property(fc.oneof(mutatedText(seedJson), fc.json({ maxDepth: 5 })), (text) => clean(() => parseKmipJson(text, { maxDepth: 16, maxItems: 4096 }))) as fc.IProperty<[unknown]>],
  ['hex', fc.property(fc.string({ maxLength: 64 }), (text) => clean(() => fromHex(text))) as fc.IProperty<[unknown]>],
  ['device frame', fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutatedFrame), (bytes) => clean(() => openFrame(bytes, FRAME_KEY))) as fc.IProperty<[unknown]>],
  [
    'SLIP',
    fc.property(fc.array(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutatedFrame.map(slipEncode)), { maxLength: 8 }), (chunks) => {
      const decoder = new SlipDecoder();
      for (const chunk of chunks) for (const frame of decoder.push(chunk)) if (frame.length > MAX_FRAME_BYTES) throw new Error('SLIP yielded an oversize frame');
    }) as fc.IProperty<[unknown]>,
  ],
  [
    'Put/Notify',
    fc.property(fc.oneof(mutatedFrom(pushMessages), anyBytes), (bytes) =>
      clean(() => {
        for (const item of parseRequestMessage(decodeTtlv(bytes, LIMITS)).batchItems) if (item.operation === Operation.Put || item.operation === Operation.Notify) readPush(item.operation, item.payload);
      }),
    ) as fc.IProperty<[unknown]>,
  ],
  ['nonce-MAC request', fc.property(mutatedFrom(nonceMacRequests), (bytes) => clean(() => readNonceMacItems(parseRequestMessage(decodeTtlv(bytes, LIMITS)).batchItems))) as fc.IProperty<[unknown]>],
  [
    'config file',
    fc.property(yamlInput, (text) =>
      clean(() => {
        writeFileSync(configFile, text);
        loadAgentConfig({ file: configFile, flags: NO_FLAGS });
      }),
    ) as fc.IProperty<[unknown]>,
  ],
];

const chosen = values.only === undefined ? targets : targets.filter(([name]) => values.only!.some((wanted) => name.toLowerCase().includes(wanted.toLowerCase())));
if (chosen.length === 0) usage(`--only matched no parser; the parsers: ${targets.map(([name]) => name).join(', ')}`);

/** A counterexample as text: byte arrays as hex, the rest as JSON. */
function shown(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v instanceof Uint8Array ? toHex(v) : typeof v === 'bigint' ? v.toString() : v));
}

let failed = false;
for (const [name, property] of chosen) {
  const started = performance.now();
  const result = fc.check(property, {
    ...(inputs === undefined ? { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: seconds * 1000, markInterruptAsFailure: false } : { numRuns: inputs }),
    ...(seed !== undefined && { seed }),
  });
  const elapsed = (performance.now() - started) / 1000;
  // The inputs each parser ran on, the failing one and its shrinking included.
  const count = result.numRuns + result.numShrinks;
  const finding = result.failed ? { counterexample: shown(result.counterexample), error: String((result.errorInstance as Error | undefined)?.message ?? result.errorInstance) } : null;
  if (result.failed) failed = true;
  if (values.json) {
    console.log(JSON.stringify({ parser: name, inputs: count, seconds: Number(elapsed.toFixed(1)), inputsPerSec: Math.round(count / elapsed), seed: result.seed, finding }));
  } else if (result.failed) {
    console.log(`${name}: FAILED after ${result.numRuns} inputs (seed ${result.seed})\n${fc.defaultReportMessage(result)}`);
  } else {
    console.log(`${name}: ${count} inputs in ${elapsed.toFixed(1)} s (${Math.round(count / elapsed)}/s), no finding`);
  }
}
process.exitCode = failed ? 1 : 0;
