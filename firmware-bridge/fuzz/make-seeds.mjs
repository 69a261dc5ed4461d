#!/usr/bin/env node
// Seeds for the fuzzers from vectors/frames.json (the other files in fuzz/corpus/ are inputs
// the fuzzers found, merged with -merge=1 after the 10-minute runs): bodies (TTLV), frames as the identity
// backend of fuzz_common.h opens them, and the SLIP packets. Writes fuzz/corpus/<target>/.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { frames } = JSON.parse(readFileSync(join(root, 'vectors', 'frames.json'), 'utf8'));
const dir = (name) => { const d = join(root, 'fuzz', 'corpus', name); mkdirSync(d, { recursive: true }); return d; };
const [ttlv, frame, slip] = [dir('ttlv'), dir('frame'), dir('slip')];
frames.forEach((f, i) => {
  const body = Buffer.from(f.body, 'hex');
  writeFileSync(join(ttlv, `vector-${i}`), body);
  writeFileSync(join(slip, `vector-${i}`), Buffer.concat([Buffer.from([0]), Buffer.from(f.slip, 'hex')]));
  // First byte 0: identity backend, AES suite. Header: down, reply_to 1 (in flight) or a push.
  for (const reply of [true, false]) {
    const id = Buffer.from('dev-1');
    const header = Buffer.alloc(12 + id.length + (reply ? 8 : 0));
    header[0] = 1; header[1] = 1; header[2] = (reply ? 1 : 0) | 2; header[3] = id.length;
    id.copy(header, 4);
    header.writeBigUInt64BE(5n, 4 + id.length);
    if (reply) header.writeBigUInt64BE(1n, 12 + id.length);
    writeFileSync(join(frame, `vector-${i}-${reply ? 'reply' : 'push'}`), Buffer.concat([Buffer.from([0]), header, body, Buffer.alloc(16)]));
  }
});
