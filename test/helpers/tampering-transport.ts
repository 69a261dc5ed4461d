/**
 * A man in the middle for nonce-MAC tests: wraps a real transport (mutual TLS to the development
 * server) and lets a test rewrite each request before it leaves and each response before the
 * client reads it, as decoded TTLV trees.
 */
import type { KmipChannel, KmipTransport } from '../../src/net/transport.ts';
import { Operation, Tag } from '../../src/kmip/tables.generated.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { ItemType, type TtlvItem } from '../../src/ttlv/item.ts';
import { findItem } from './tree.ts';

export type Rewrite = (message: TtlvItem) => TtlvItem;

export class TamperingTransport implements KmipTransport {
  onRequest: Rewrite | undefined;
  onResponse: Rewrite | undefined;

  constructor(private readonly inner: KmipTransport) {}

  async acquire(timeoutMs: number): Promise<KmipChannel> {
    const channel = await this.inner.acquire(timeoutMs);
    const original = channel.roundTrip;
    if (!(original as { tampering?: boolean }).tampering) {
      const tampering = async (request: Uint8Array, t: number): Promise<Uint8Array> => {
        const sent = this.onRequest ? encodeTtlv(this.onRequest(decodeTtlv(request))) : request;
        const received = await original.call(channel, sent, t);
        return this.onResponse ? encodeTtlv(this.onResponse(decodeTtlv(received))) : received;
      };
      (tampering as { tampering?: boolean }).tampering = true;
      channel.roundTrip = tampering;
    }
    return channel;
  }

  release(channel: KmipChannel, broken: boolean): void {
    this.inner.release(channel, broken);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Flips the lowest bit of the first byte of the first Byte String with `tag`, if present. */
export function flipByte(tag: number): Rewrite {
  return (message) => {
    const item = findItem(message, tag);
    if (item?.type === ItemType.ByteString) {
      const copy = Uint8Array.from(item.value);
      copy[0]! ^= 1;
      item.value = copy;
    }
    return message;
  };
}

/** The Response Payload of the Get batch item in a response message, if any. */
export function getPayloadOf(message: TtlvItem): TtlvItem | undefined {
  if (message.type !== ItemType.Structure) return undefined;
  for (const item of message.value) {
    if (item.tag !== Tag.BatchItem || item.type !== ItemType.Structure) continue;
    if (item.value.some((c) => c.tag === Tag.Operation && c.value === Operation.Get)) return item.value.find((c) => c.tag === Tag.ResponsePayload);
  }
  return undefined;
}

/** Replaces the Get item's Response Payload with `recorded` (a response replayed). */
export function replayGetPayload(recorded: TtlvItem): Rewrite {
  return (message) => {
    if (message.type !== ItemType.Structure) return message;
    for (const item of message.value) {
      if (item.tag !== Tag.BatchItem || item.type !== ItemType.Structure) continue;
      const index = item.value.findIndex((c) => c.tag === Tag.ResponsePayload);
      if (index >= 0 && item.value.some((c) => c.tag === Tag.Operation && c.value === Operation.Get)) item.value[index] = structuredClone(recorded);
    }
    return message;
  };
}
