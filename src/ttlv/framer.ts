import { TtlvError } from './errors.ts';
import { DEFAULT_TTLV_LIMITS } from './limits.ts';

/**
 * Splits a byte stream (a TLS socket) into whole KMIP messages (KMIP 1.2 §9.1, FACTS.md §1.5):
 * read the 8-byte header, check it starts a Structure with a 0x42 tag, then take exactly `length`
 * more bytes. A length over the limit is refused from the header alone, before anything is
 * buffered for it. After an error the framer is unusable: framing is lost, close the connection.
 */
export class TtlvFramer {
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Total length of the message being assembled, known once its header has arrived. */
  private expected = -1;
  private failed: TtlvError | undefined;

  constructor(private readonly maxMessageBytes: number = DEFAULT_TTLV_LIMITS.maxMessageBytes) {
    if (!Number.isSafeInteger(maxMessageBytes) || maxMessageBytes < 8) throw new RangeError('maxMessageBytes must be an integer ≥ 8');
  }

  /** Feeds received bytes; returns the messages they complete, in order. */
  push(chunk: Uint8Array): Uint8Array[] {
    const { messages, error } = this.pushSome(chunk);
    if (error) throw error;
    return messages;
  }

  /**
   * As `push`, but framing lost part-way through `chunk` does not lose the whole messages before
   * it: they are returned with the error (a listener answers them, then says Invalid Message).
   */
  pushSome(chunk: Uint8Array): { messages: Uint8Array[]; error: TtlvError | undefined } {
    const messages: Uint8Array[] = [];
    try {
      this.collect(chunk, messages);
    } catch (error) {
      if (!(error instanceof TtlvError)) throw error;
      return { messages, error };
    }
    return { messages, error: undefined };
  }

  private collect(chunk: Uint8Array, messages: Uint8Array[]): void {
    if (this.failed) throw this.failed;
    let offset = 0;
    while (offset < chunk.length) {
      if (this.buffered === 0 && chunk.length - offset >= 8) {
        // The usual case: a message's header at hand, and often the whole message — taken as
        // concat() takes a single chunk (slice: a view of a Buffer, each socket read has its own;
        // a copy of any other array), with no header assembled and nothing buffered.
        const length = this.checkHeader(chunk.subarray(offset, offset + 8));
        if (chunk.length - offset >= length) {
          messages.push(chunk.slice(offset, offset + length));
          offset += length;
          continue;
        }
        this.expected = length;
      }
      if (this.expected < 0) {
        const needed = 8 - this.buffered;
        const take = Math.min(needed, chunk.length - offset);
        this.chunks.push(chunk.subarray(offset, offset + take));
        this.buffered += take;
        offset += take;
        if (this.buffered < 8) break;
        this.expected = this.checkHeader(concat(this.chunks, 8));
      }
      const take = Math.min(this.expected - this.buffered, chunk.length - offset);
      this.chunks.push(chunk.subarray(offset, offset + take));
      this.buffered += take;
      offset += take;
      if (this.buffered === this.expected) {
        messages.push(concat(this.chunks, this.expected));
        this.chunks.length = 0;
        this.buffered = 0;
        this.expected = -1;
      }
    }
  }

  /** Bytes held for a message not yet complete. */
  get pendingBytes(): number {
    return this.buffered;
  }

  private checkHeader(header: Uint8Array): number {
    const length = new DataView(header.buffer, header.byteOffset, 8).getUint32(4);
    let problem: string | undefined;
    if (header[0] !== 0x42) problem = `tag 0x${Buffer.from(header.subarray(0, 3)).toString('hex')} is not a KMIP message tag`;
    else if (header[3] !== 0x01) problem = `type 0x${header[3]!.toString(16).padStart(2, '0')} is not a Structure`;
    else if ((length & 7) !== 0) problem = `Structure length ${length} is not a multiple of 8`;
    if (problem !== undefined) this.failed = new TtlvError('TTLV_NOT_A_MESSAGE', problem, 0, []);
    else if (length + 8 > this.maxMessageBytes) {
      this.failed = new TtlvError('TTLV_TOO_LARGE', `message of ${length + 8} bytes exceeds maxMessageBytes ${this.maxMessageBytes}`, 0, []);
    }
    if (this.failed) throw this.failed;
    return length + 8;
  }
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]!.length === total) return chunks[0]!.slice();
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
