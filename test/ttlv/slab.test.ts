/**
 * The slab allocator (src/ttlv/slab.ts): arrays and Buffers carved from shared slabs start zero
 * and never share a byte, across slab boundaries and with sizes that straddle them; the large
 * ones get their own memory.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { allocZeroed, allocZeroedBuffer } from '../../src/ttlv/slab.ts';

it('arrays and Buffers from the slabs start zero and never overlap, over many slabs', () => {
  const views: Uint8Array[] = [];
  for (let i = 0; i < 3000; i++) {
    const size = (i * 37) % 4200; // up to past a quarter slab (own memory), 0 included
    const view = i % 2 === 0 ? allocZeroed(size) : allocZeroedBuffer(size);
    assert.equal(view.length, size);
    assert.equal(Buffer.isBuffer(view), i % 2 === 1);
    assert.ok(view.every((byte) => byte === 0), `view ${i} starts zero`);
    view.fill(i % 255 + 1);
    views.push(view);
  }
  views.forEach((view, i) => assert.ok(view.every((byte) => byte === i % 255 + 1), `view ${i} kept its own bytes`));
});
