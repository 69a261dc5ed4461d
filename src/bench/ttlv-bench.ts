/**
 * TTLV codec benchmark. decode = bytes → the complete item tree (every value materialized, text
 * decoded, byte strings copied); encode = that tree → identical bytes (checked before timing).
 * Baseline in the same run: PyKMIP's codec on the same bytes, where /usr/bin/python3 has it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { fromHex, toHex } from '../ttlv/hex.ts';
import { packageRoot } from '../cli/package-root.ts';
import { measureOpsPerSecond } from './measure.ts';

export const DEFAULT_TTLV_INPUTS = ['bench/inputs/get-response-aes256.hex', 'bench/inputs/create-request-aes256.hex'];
const SYSTEM_PYTHON = '/usr/bin/python3';

export interface TtlvBenchResult {
  input: string;
  bytes: number;
  decodePerSec: number;
  encodePerSec: number;
  pykmipDecodePerSec?: number;
  pykmipEncodePerSec?: number;
}

export async function benchTtlv(options: { inputs: string[]; seconds: number; json: boolean; out: (text: string) => void }): Promise<TtlvBenchResult[]> {
  const root = packageRoot();
  const paths = options.inputs.length > 0 ? options.inputs : DEFAULT_TTLV_INPUTS.map((p) => join(root, p));
  const results: TtlvBenchResult[] = [];
  if (!options.json) options.out('TTLV codec, one core (msg/s; baseline PyKMIP on the same bytes, same run)\n');
  for (const path of paths) {
    const bytes = fromHex(readFileSync(path, 'utf8'));
    const tree = decodeTtlv(bytes);
    if (toHex(encodeTtlv(tree)) !== toHex(bytes)) throw new Error(`${path}: encode(decode(bytes)) is not byte-identical; not a fair benchmark`);
    const decodePerSec = await measureOpsPerSecond(() => decodeTtlv(bytes), options.seconds);
    const encodePerSec = await measureOpsPerSecond(() => encodeTtlv(tree), options.seconds);
    const result: TtlvBenchResult = { input: basename(path), bytes: bytes.length, decodePerSec: Math.round(decodePerSec), encodePerSec: Math.round(encodePerSec) };
    const pykmip = measurePyKmip(bytes, options.seconds);
    if (pykmip) {
      result.pykmipDecodePerSec = Math.round(pykmip.decode);
      result.pykmipEncodePerSec = Math.round(pykmip.encode);
    }
    results.push(result);
    if (options.json) {
      options.out(JSON.stringify(result) + '\n');
    } else {
      const ratio = (ours: number, theirs: number | undefined): string => (theirs ? ` (${(ours / theirs).toFixed(0)}× PyKMIP ${theirs.toLocaleString('en')})` : '');
      options.out(
        `  ${result.input} (${result.bytes} bytes)\n` +
          `    decode ${result.decodePerSec.toLocaleString('en')}/s${ratio(result.decodePerSec, result.pykmipDecodePerSec)}\n` +
          `    encode ${result.encodePerSec.toLocaleString('en')}/s${ratio(result.encodePerSec, result.pykmipEncodePerSec)}\n`,
      );
    }
  }
  if (!options.json && !results.some((r) => r.pykmipDecodePerSec)) {
    options.out(`  (no PyKMIP baseline: ${SYSTEM_PYTHON} lacks the kmip package — apt-get install python3-pykmip)\n`);
  }
  return results;
}

/** PyKMIP's RequestMessage/ResponseMessage read and write on the same bytes, timed in Python. */
const PYKMIP_SCRIPT = `
import sys, time
from kmip.core.messages.messages import RequestMessage, ResponseMessage
from kmip.core.utils import BytearrayStream
data = bytes.fromhex(sys.argv[1]); seconds = float(sys.argv[2])
cls = RequestMessage if data[:3] == bytes.fromhex('420078') else ResponseMessage
def decode():
    m = cls(); m.read(BytearrayStream(data)); return m
def encode(m):
    s = BytearrayStream(); m.write(s); return s
def rate(fn):
    fn(); n = 0; start = time.perf_counter()
    while True:
        for _ in range(50): fn()
        n += 50
        elapsed = time.perf_counter() - start
        if elapsed >= seconds: return n / elapsed
msg = decode()
print(rate(decode), rate(lambda: encode(msg)))
`;

function measurePyKmip(bytes: Uint8Array, seconds: number): { decode: number; encode: number } | undefined {
  if (!existsSync(SYSTEM_PYTHON)) return undefined;
  const run = spawnSync(SYSTEM_PYTHON, ['-c', PYKMIP_SCRIPT, toHex(bytes), String(seconds)], { encoding: 'utf8', timeout: (seconds * 4 + 30) * 1000 });
  if (run.status !== 0) return undefined;
  const [decode, encode] = run.stdout.trim().split(/\s+/).map(Number);
  return decode && encode ? { decode, encode } : undefined;
}

// Re-exported for tests that check the default inputs exist.
export function defaultInputPaths(): string[] {
  const root = packageRoot();
  return DEFAULT_TTLV_INPUTS.map((p) => join(root, p));
}
