import type { KmipChannel, KmipTransport } from './transport.ts';

/** Wraps a transport and counts the messages that cross it, to show what coalescing saved. */
export class CountingTransport implements KmipTransport {
  roundTrips = 0;

  constructor(private readonly inner: KmipTransport) {}

  async acquire(timeoutMs: number): Promise<KmipChannel> {
    const channel = await this.inner.acquire(timeoutMs);
    const original = channel.roundTrip;
    if (!(original as { counted?: boolean }).counted) {
      const counted = (request: Uint8Array, t: number): Promise<Uint8Array> => {
        this.roundTrips++;
        return original.call(channel, request, t);
      };
      (counted as { counted?: boolean }).counted = true;
      channel.roundTrip = counted;
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
