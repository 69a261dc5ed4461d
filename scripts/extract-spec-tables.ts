/**
 * Extracts the KMIP tag, enumeration, bit-mask and attribute-name tables from the project's facts
 * digest (`../shared/kmip/FACTS.md` §2–3) into the committed data table
 * `src/kmip/spec/kmip-facts.json`. Run it when FACTS.md changes, then `npm run generate`.
 *
 *   node --import tsx scripts/extract-spec-tables.ts [path/to/FACTS.md] [--stdout]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface TagRow { tag: string; name: string; type: string; since: string; note?: string }
interface ValueRow { value: string; name: string; since: string; note?: string }
interface EnumTable { name: string; tag: string; values: ValueRow[] }
interface AttributeRow { name: string; valueTag: string; valueType: string; multiInstance: string; since: string }

const TYPE_ABBREVIATIONS: Record<string, string> = {
  S: 'Structure', I: 'Integer', LI: 'LongInteger', BI: 'BigInteger', E: 'Enumeration', B: 'Boolean',
  TS: 'TextString', BS: 'ByteString', DT: 'DateTime', IV: 'Interval', DTX: 'DateTimeExtended',
};
const MASK_TABLES = new Set(['Cryptographic Usage Mask', 'Storage Status Mask']);

function cells(line: string): string[] {
  return line.split('|').slice(1, -1).map((c) => c.trim());
}

function section(text: string, startHeading: string, endHeading: string): string {
  const start = text.indexOf(startHeading);
  const end = text.indexOf(endHeading, start);
  if (start < 0 || end < 0) throw new Error(`FACTS.md: section ${startHeading} not found`);
  return text.slice(start, end);
}

/** One type word for the generated table: the wire type in 1.x (first of several). */
function tagType(raw: string): string {
  const abbreviation = TYPE_ABBREVIATIONS[raw];
  if (abbreviation) return abbreviation;
  const first = raw.replace(/\(.*$/, '').split(/ or |\//)[0]!.trim();
  const words: Record<string, string> = {
    'Byte String': 'ByteString', 'Text String': 'TextString', Boolean: 'Boolean', Structure: 'Structure',
    Integer: 'Integer', Enumeration: 'Enumeration', any: 'Any', varies: 'Any', '-': 'Any',
  };
  return words[first] ?? 'Any';
}

function parseTags(text: string): TagRow[] {
  const rows: TagRow[] = [];
  for (const line of section(text, '## 2. Tag table', '## 3. Enumerations').split('\n')) {
    const c = cells(line);
    if (c.length !== 5 || !/^[0-9A-F]{6}$/.test(c[0]!)) continue;
    const row: TagRow = { tag: `0x${c[0]}`, name: c[1]!, type: tagType(c[2]!), since: c[3]! };
    const note = [c[2]!.length > 3 && !TYPE_ABBREVIATIONS[c[2]!] ? c[2] : '', c[4]].filter(Boolean).join('; ');
    if (note) row.note = note;
    rows.push(row);
  }
  return rows;
}

function parseEnumerations(text: string): EnumTable[] {
  const body = section(text, '## 3. Enumerations', '### Attribute names');
  const tables: EnumTable[] = [];
  for (const block of body.split('\n#### ').slice(1)) {
    const heading = block.slice(0, block.indexOf('\n'));
    const tagMatch = /0x(42[0-9A-F]{4})/.exec(heading);
    if (!tagMatch) continue;
    const name = heading.replace(/\s*\(.*$/, '').trim();
    const values: ValueRow[] = [];
    for (const line of block.split('\n')) {
      const c = cells(line);
      if (c.length === 4 && /^0x[0-9a-f]+$/i.test(c[0]!)) {
        if (c[1] === '(Reserved)') continue;
        const row: ValueRow = { value: c[0]!.toLowerCase(), name: c[1]!, since: c[2]! };
        if (c[3]) row.note = c[3];
        values.push(row);
      }
    }
    // Short tables are written inline: `0x1 Name (1.0) · 0x2 Other (1.1, note)`.
    for (const match of block.matchAll(/(?:^|· |\. )(0x[0-9a-f]+) ([^·\n]+?) \(([0-9.]+)(?:, ([^)]*(?:\([^)]*\)[^)]*)*))?\)(?= ·|\s*$)/gim)) {
      const row: ValueRow = { value: match[1]!.toLowerCase(), name: match[2]!.trim(), since: match[3]! };
      if (match[4]) row.note = match[4];
      values.push(row);
    }
    if (values.length === 0) throw new Error(`FACTS.md: no values parsed for ${name}`);
    tables.push({ name, tag: `0x${tagMatch[1]}`, values });
  }
  return tables;
}

function parseAttributes(text: string): AttributeRow[] {
  const rows: AttributeRow[] = [];
  for (const line of section(text, '### Attribute names', '## 4. Structures').split('\n')) {
    const c = cells(line);
    if (c.length < 6 || !/^`.*`$/.test(c[0]!)) continue;
    rows.push({ name: c[0]!.slice(1, -1), valueTag: c[1]!, valueType: c[2]!, multiInstance: c[3]!, since: c[4]! });
  }
  return rows;
}

const args = process.argv.slice(2);
const toStdout = args.includes('--stdout');
const factsPath = args.find((a) => !a.startsWith('--')) ?? fileURLToPath(new URL('../../shared/kmip/FACTS.md', import.meta.url));
const facts = readFileSync(factsPath, 'utf8');
const enumerations = parseEnumerations(facts);
const table = {
  $comment: 'Extracted from FACTS.md §2–3 by scripts/extract-spec-tables.ts. Sources and confidence: FACTS.md §0 and §8.',
  tags: parseTags(facts),
  enumerations: enumerations.filter((e) => !MASK_TABLES.has(e.name)),
  masks: enumerations.filter((e) => MASK_TABLES.has(e.name)),
  attributes: parseAttributes(facts),
};
const text = JSON.stringify(table, null, 1) + '\n';
if (toStdout) {
  process.stdout.write(text);
} else {
  const out = fileURLToPath(new URL('../src/kmip/spec/kmip-facts.json', import.meta.url));
  writeFileSync(out, text);
  console.log(`${out}: ${table.tags.length} tags, ${table.enumerations.length} enumerations, ${table.masks.length} masks, ${table.attributes.length} attribute names`);
}
