import type { ProtocolVersion } from '../kmip/message.ts';

/**
 * One way to exchange a KMIP message for its response (KMIP 1.2 §10: TTLV over TLS, or the HTTPS
 * profile). A channel carries one request at a time; the transport hands channels out.
 */
export interface KmipChannel {
  roundTrip(request: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /** The protocol version agreed on this channel, once negotiated (KMIP 1.2 §4.26). */
  negotiatedVersion: ProtocolVersion | undefined;
}

export interface KmipTransport {
  /** A channel for exclusive use until `release`; `broken` discards it. */
  acquire(timeoutMs: number): Promise<KmipChannel>;
  release(channel: KmipChannel, broken: boolean): void;
  close(): Promise<void>;
}
