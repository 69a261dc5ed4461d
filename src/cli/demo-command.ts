/**
 * `kmip-edge demo` — the all-in-one demo on embedded defaults. Today it shows the layer that
 * exists, the codec: the embedded KMIP messages go XML → TTLV → tree → XML and JSON, with checks.
 * It grows into the full gateway demo (dev server, agent, simulated devices) as those land.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatKmipJson } from '../kmip/json.ts';
import { formatKmipXml, parseKmipXml } from '../kmip/xml.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { toHex } from '../ttlv/hex.ts';
import { isDeepStrictEqual } from 'node:util';
import { packageRoot } from './package-root.ts';

const EMBEDDED = ['bench/inputs/create-request-aes256.xml', 'bench/inputs/get-response-aes256.xml'];

export async function runDemo(_args: string[], out: (text: string) => void): Promise<number> {
  out('kmip-edge demo — codec layer (the agent, dev server and devices join this demo as they land)\n\n');
  let failures = 0;
  for (const relative of EMBEDDED) {
    const xml = readFileSync(join(packageRoot(), relative), 'utf8');
    const tree = parseKmipXml(xml);
    const bytes = encodeTtlv(tree);
    const back = decodeTtlv(bytes);
    const same = isDeepStrictEqual(back, tree) && toHex(encodeTtlv(back)) === toHex(bytes);
    if (!same) failures++;
    const json = formatKmipJson(back);
    out(`${relative}\n`);
    out(`  KMIP XML (${xml.length} chars) → TTLV ${bytes.length} bytes: ${toHex(bytes.subarray(0, 24))}…\n`);
    out(`  TTLV → tree → TTLV: ${same ? 'byte-identical' : 'MISMATCH'}; as XML ${formatKmipXml(back).length} chars, as JSON ${json.length} chars\n\n`);
  }
  out(failures === 0 ? 'all round trips exact\n' : `${failures} round trip(s) failed\n`);
  return failures === 0 ? 0 : 1;
}
