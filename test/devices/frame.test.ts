/**
 * Device frames (firmware-bridge/PROTOCOL.md): the shared vectors, cross-checked with an
 * independent AEAD implementation (@noble/ciphers; frames use OpenSSL's); every single-bit flip, truncation, oversize, wrong key or suite rejected; SLIP framing;
 * replay protection; property-based fuzzing of the parsers.
 */
import assert from 'node:assert/strict';
import { gcm } from '@noble/ciphers/aes.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_FRAME_BYTES, openFrame, parseFrameHeader, sealFrame, Suite, type Direction } from '../../src/devices/frame.ts';
import { ReplayGuard } from '../../src/devices/replay-guard.ts';

/** The guard answers at once when the window is in memory: as a promise here, like when it loads. */
const accept = async (guard: ReplayGuard, id: string, direction: 'up' | 'down', counter: bigint) => guard.accept(id, direction, counter);
import { MAX_SLIP_PAYLOAD, SlipDecoder, slipEncode } from '../../src/devices/slip.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { fromHex, toHex } from '../../src/ttlv/hex.ts';
import { ROOT } from '../helpers/cli.ts';

interface Vector { name: string; suite: Suite; direction: Direction; deviceId: string; counter: string; replyTo?: string; body: string; frame: string; slip: string }
const vectors = JSON.parse(readFileSync(join(ROOT, 'firmware-bridge/vectors/frames.json'), 'utf8')) as { key: string; frames: Vector[] };
const key = fromHex(vectors.key);
const isFrameError = (e: unknown) => typeof (e as { code?: unknown }).code === 'string' && (e as { code: string }).code.startsWith('FRAME_');
const sample = fromHex(vectors.frames[0]!.frame);

describe('device frames: shared vectors', () => {
  for (const v of vectors.frames) {
    it(`${v.name}: seals to the vector's bytes and opens to its body`, () => {
      const header = { suite: v.suite, direction: v.direction, deviceId: v.deviceId, counter: BigInt(v.counter), replyTo: v.replyTo === undefined ? undefined : BigInt(v.replyTo) };
      assert.equal(toHex(sealFrame(header, key, fromHex(v.body))), v.frame);
      const opened = openFrame(fromHex(v.frame), key);
      assert.equal(toHex(opened.body), v.body);
      assert.deepEqual(opened.header, { version: 1, ...header });
      assert.equal(toHex(slipEncode(fromHex(v.frame))), v.slip);
    });

    it(`${v.name}: an independent AEAD (@noble/ciphers) decrypts it with the nonce and additional data PROTOCOL.md specifies`, () => {
      const frame = fromHex(v.frame);
      const headerLength = 4 + v.deviceId.length + 8 + (v.replyTo === undefined ? 0 : 8);
      const nonce = Buffer.alloc(12);
      nonce.writeUInt32BE(v.direction === 'down' ? 1 : 0, 0);
      nonce.writeBigUInt64BE(BigInt(v.counter), 4);
      const aad = frame.subarray(0, headerLength);
      const aead = v.suite === Suite.AES_256_GCM ? gcm(key, nonce, aad) : chacha20poly1305(key, nonce, aad);
      assert.equal(toHex(aead.decrypt(frame.subarray(headerLength))), v.body);
    });
  }
});

describe('device frames: what is rejected (and changes nothing)', () => {
  it('every single-bit flip of a valid frame', () => {
    for (let bit = 0; bit < sample.length * 8; bit++) {
      const flipped = Uint8Array.from(sample);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      assert.throws(() => openFrame(flipped, key), isFrameError, `bit ${bit}`);
    }
  });

  it('every truncation', () => {
    for (let length = 0; length < sample.length; length++) assert.throws(() => openFrame(sample.subarray(0, length), key), isFrameError, `length ${length}`);
  });

  it('another device key, and a suite byte that does not match how it was sealed', () => {
    assert.throws(() => openFrame(sample, fromHex('11'.repeat(32))), (e: unknown) => (e as { code: string }).code === 'FRAME_AUTH_FAILED');
    const otherSuite = Uint8Array.from(sample);
    otherSuite[1] = Suite.CHACHA20_POLY1305;
    assert.throws(() => openFrame(otherSuite, key), (e: unknown) => (e as { code: string }).code === 'FRAME_AUTH_FAILED');
  });

  it('size: a frame of exactly 4096 bytes opens; one byte more is refused before any decryption', () => {
    const header = { suite: Suite.AES_256_GCM, direction: 'up' as const, deviceId: 'd', counter: 1n, replyTo: undefined };
    const bodyLength = MAX_FRAME_BYTES - (4 + 1 + 8) - 16;
    const full = sealFrame(header, key, new Uint8Array(bodyLength));
    assert.equal(full.length, MAX_FRAME_BYTES);
    assert.equal(openFrame(full, key).body.length, bodyLength);
    assert.throws(() => sealFrame(header, key, new Uint8Array(bodyLength + 1)), (e: unknown) => (e as { code: string }).code === 'FRAME_TOO_LARGE');
    assert.throws(() => parseFrameHeader(new Uint8Array(MAX_FRAME_BYTES + 1)), (e: unknown) => (e as { code: string }).code === 'FRAME_TOO_LARGE');
  });

  it('bad header fields: version, suite, reserved flags, device id, counter 0', () => {
    const cases: [number, number, string][] = [[0, 2, 'FRAME_VERSION'], [1, 9, 'FRAME_SUITE'], [2, 0x80, 'FRAME_FLAGS'], [3, 0, 'FRAME_DEVICE_ID'], [4, 0x20, 'FRAME_DEVICE_ID']];
    for (const [offset, value, code] of cases) {
      const bad = Uint8Array.from(sample);
      bad[offset] = value;
      assert.throws(() => parseFrameHeader(bad), (e: unknown) => (e as { code: string }).code === code, code);
    }
    const zero = Uint8Array.from(sample);
    zero.fill(0, 4 + 12, 4 + 12 + 8);
    assert.throws(() => parseFrameHeader(zero), (e: unknown) => (e as { code: string }).code === 'FRAME_COUNTER');
  });

  it('property: random and mutated bytes only ever fail with a FRAME_ error', () => {
    const mutated = fc.tuple(fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 6 }), fc.nat()).map(([edits, cut]) => {
      const bytes = Uint8Array.from(sample);
      for (const [position, value] of edits) bytes[position % bytes.length] = value;
      return bytes.subarray(0, cut % (bytes.length + 1));
    });
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated), (bytes) => {
      try {
        openFrame(bytes, key);
      } catch (error) {
        if (!isFrameError(error)) throw error;
      }
    }), { numRuns: 3000 });
  });
});

describe('serial SLIP framing with CRC-32', () => {
  it('round-trips frames with every byte value, across arbitrary chunking', () => {
    const frames = [Uint8Array.from({ length: 256 }, (_, i) => i), sample, Uint8Array.of(0xc0, 0xdb, 0xc0)];
    const stream = Buffer.concat(frames.map(slipEncode));
    for (const size of [1, 3, 7, 64, stream.length]) {
      const decoder = new SlipDecoder();
      const out: Uint8Array[] = [];
      for (let i = 0; i < stream.length; i += size) out.push(...decoder.push(stream.subarray(i, i + size)));
      assert.deepEqual(out.map(toHex), frames.map(toHex), `chunks of ${size}`);
    }
  });

  it('resynchronizes after noise and drops a packet with a bad CRC', () => {
    const decoder = new SlipDecoder();
    const good = slipEncode(sample);
    const corrupted = Uint8Array.from(good);
    corrupted[10]! ^= 0x01;
    const out = decoder.push(Buffer.concat([Buffer.from('line noise without END'), corrupted, good]));
    assert.deepEqual(out.map(toHex), [toHex(sample)]);
    assert.equal(decoder.stats.crcErrors, 1);
  });

  it('size: a packet at the limit decodes; one byte over is dropped up to the next END', () => {
    const atLimit = new Uint8Array(MAX_SLIP_PAYLOAD - 4).fill(7);
    const over = new Uint8Array(MAX_SLIP_PAYLOAD - 3).fill(7);
    const decoder = new SlipDecoder();
    const out = decoder.push(Buffer.concat([slipEncode(atLimit), slipEncode(over), slipEncode(sample)]));
    assert.deepEqual(out.map((f) => f.length), [atLimit.length, sample.length]);
    assert.equal(decoder.stats.oversize, 1);
  });

  it('property: random bytes never throw and never yield a frame over the limit', () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (chunks) => {
      const decoder = new SlipDecoder();
      for (const chunk of chunks) for (const frame of decoder.push(chunk)) assert.ok(frame.length <= MAX_FRAME_BYTES);
    }), { numRuns: 2000 });
  });
});

describe('replay protection (PROTOCOL.md §3)', () => {
  const replayed = (e: unknown) => (e as { code?: string }).code === 'FRAME_REPLAYED';

  it('accepts each counter once: above the highest, or inside the 64-counter window below it; per device and direction, across restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-replay-'));
    let store = await LevelStore.open(dir);
    try {
      const guard = new ReplayGuard(store);
      await store.commit([await accept(guard, 'dev-a', 'up', 5n)]);
      await assert.rejects(accept(guard, 'dev-a', 'up', 5n), replayed);
      await accept(guard, 'dev-a', 'up', 4n); // never used, inside the window: once
      await assert.rejects(accept(guard, 'dev-a', 'up', 4n), replayed);
      await accept(guard, 'dev-a', 'down', 1n); // the other direction has its own counter
      await accept(guard, 'dev-b', 'up', 1n); // so does another device
      const pending = accept(guard, 'dev-a', 'up', 6n);
      await assert.rejects(accept(guard, 'dev-a', 'up', 6n), replayed, 'a concurrent replay of an accepted counter');
      await store.commit([await pending]);
      // The window: 100 accepted; 37 is 63 below (inside, once), 36 is 64 below (outside).
      await store.commit([await accept(guard, 'dev-a', 'up', 100n)]);
      await assert.rejects(accept(guard, 'dev-a', 'up', 36n), replayed);
      await store.commit([await accept(guard, 'dev-a', 'up', 37n)]);
      await assert.rejects(accept(guard, 'dev-a', 'up', 37n), replayed);
      // 6 was accepted before the jump to 100 and is now outside the window anyway.
      await assert.rejects(accept(guard, 'dev-a', 'up', 6n), replayed);
      await store.close();
      store = await LevelStore.open(dir);
      const after = new ReplayGuard(store);
      await assert.rejects(accept(after, 'dev-a', 'up', 100n), replayed);
      await assert.rejects(accept(after, 'dev-a', 'up', 37n), replayed, 'the window survives a restart');
      await accept(after, 'dev-a', 'up', 38n);
      await accept(after, 'dev-a', 'up', 1000n); // a jump beyond the window starts a new one
      await assert.rejects(accept(after, 'dev-a', 'up', 936n), replayed);
      await accept(after, 'dev-a', 'up', 937n);
    } finally {
      await store.close();
    }
  });

  it('a counter stored before the window existed (8 bytes) counts every counter below it as used', async () => {
    const store = await LevelStore.open(mkdtempSync(join(tmpdir(), 'kmip-edge-replay-legacy-')));
    try {
      const value = new Uint8Array(8);
      new DataView(value.buffer).setBigUint64(0, 50n);
      await store.commit([{ type: 'put', key: 'device/counter/old/up', value }]);
      const guard = new ReplayGuard(store);
      await assert.rejects(accept(guard, 'old', 'up', 50n), replayed);
      await assert.rejects(accept(guard, 'old', 'up', 49n), replayed);
      await accept(guard, 'old', 'up', 51n);
    } finally {
      await store.close();
    }
  });

  it('any order of distinct counters is accepted exactly once each, whatever is replayed (property)', async () => {
    const store = await LevelStore.open(mkdtempSync(join(tmpdir(), 'kmip-edge-replay-prop-')));
    try {
      await fc.assert(fc.asyncProperty(fc.array(fc.bigInt({ min: 1n, max: 200n }), { minLength: 1, maxLength: 80 }), async (counters) => {
        const guard = new ReplayGuard(store);
        const id = `p-${Math.random().toString(36).slice(2)}`;
        const accepted = new Set<bigint>();
        let highest = 0n;
        for (const c of counters) {
          const ok = await accept(guard, id, 'up', c).then(() => true, () => false);
          const expected = !accepted.has(c) && (c > highest || highest - c < 64n);
          assert.equal(ok, expected, `counter ${c} after ${[...accepted]}`);
          if (ok) {
            accepted.add(c);
            if (c > highest) highest = c;
          }
        }
      }), { numRuns: 200 });
    } finally {
      await store.close();
    }
  });
});
