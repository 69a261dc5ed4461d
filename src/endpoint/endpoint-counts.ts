/**
 * What the local KMIP endpoint counts, for /metrics (kmip_edge_kmip_connections_total,
 * kmip_edge_kmip_requests_total): connections by what became of them, and answered batch items
 * by operation and result, read from the response the service built (a walk over its TTLV
 * headers, no decoding into objects: the hot path stays a scan of a few hundred bytes).
 *
 * Bounded by construction: operations are CLIENT_OPERATIONS or "Other", results are "Success" or
 * a name of the Result Reason / Result Status enumerations (KMIP 1.2 §9.1.3.2.28-29); never a
 * client id, a key or anything a peer wrote.
 */
import { Operation, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { enumerationFor } from '../kmip/vocabulary.ts';
import { CLIENT_OPERATIONS } from './client-registry.ts';

export const CONNECTION_EVENTS = ['accepted', 'handshake_refused', 'unregistered', 'over_capacity', 'over_client_limit', 'timed_out', 'framing_lost', 'invalid_message'] as const;
export type ConnectionEvent = (typeof CONNECTION_EVENTS)[number];

/** Operation → a small index (0: no Operation in the item, 1: any other): the counts' keys stay few whatever a peer sends. */
const OPERATION_INDEX = new Map<number, number>(CLIENT_OPERATIONS.map((name, index) => [Operation[name], index + 2]));
const OPERATION_LABELS = ['None', 'Other', ...CLIENT_OPERATIONS];
const REASONS = enumerationFor(Tag.ResultReason)!.byValue;
const STATUSES = enumerationFor(Tag.ResultStatus)!.byValue;
const REASON_KEY = 0x1000;
const STATUS_KEY = 0x2000;
const OTHER_KEY = 0x3000;

export class EndpointCounts {
  readonly connections: Record<ConnectionEvent, number> = Object.fromEntries(CONNECTION_EVENTS.map((event) => [event, 0])) as Record<ConnectionEvent, number>;
  /** Batch items answered, by operation index × 0x10000 + result key: numbers, no string built per request. */
  private readonly items = new Map<number, number>();

  connection(event: ConnectionEvent): void {
    this.connections[event]++;
  }

  /** Counts one Get answered Success (KmipAnswer.getSuccess: what response() would read from its bytes). */
  getSuccess(): void {
    this.count(Operation.Get, ResultStatus.Success, -1);
  }

  /** Counts each batch item of a Response Message (TTLV bytes built by the service). */
  response(response: Uint8Array): void {
    forEachBatchItem(response, this.count);
  }

  private readonly count = (operation: number, status: number, reason: number): void => {
    const op = operation < 0 ? 0 : (OPERATION_INDEX.get(operation) ?? 1);
    const result = status === ResultStatus.Success ? 0 : REASONS.has(reason) ? REASON_KEY + reason : STATUSES.has(status) ? STATUS_KEY + status : OTHER_KEY;
    const key = op * 0x10000 + result;
    this.items.set(key, (this.items.get(key) ?? 0) + 1);
  };

  requests(): { operation: string; result: string; count: number }[] {
    return [...this.items].map(([key, count]) => {
      const result = key & 0xffff;
      const label = result === 0 ? 'Success' : result >= OTHER_KEY ? 'Other' : result >= STATUS_KEY ? STATUSES.get(result - STATUS_KEY)! : REASONS.get(result - REASON_KEY)!;
      return { operation: OPERATION_LABELS[Math.floor(key / 0x10000)]!, result: label, count };
    });
  }
}

const u32 = (bytes: Uint8Array, at: number): number => ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
const tagAt = (bytes: Uint8Array, at: number): number => (bytes[at]! << 16) | (bytes[at + 1]! << 8) | bytes[at + 2]!;
/** An item's whole length: header, value, padding to 8 (KMIP 1.2 §9.1.1). */
const spanAt = (bytes: Uint8Array, at: number): number => 8 + Math.ceil(u32(bytes, at + 4) / 8) * 8;

/**
 * Calls `visit` with the Operation, Result Status and Result Reason (-1 when absent) of each Batch
 * Item (0x42000F) of a Response Message; stops quietly at anything that does not fit (it only
 * counts). No allocation: it runs on every answer.
 */
export function forEachBatchItem(message: Uint8Array, visit: (operation: number, status: number, reason: number) => void): void {
  if (message.length < 8 || tagAt(message, 0) !== Tag.ResponseMessage) return;
  const end = Math.min(message.length, 8 + u32(message, 4));
  for (let at = 8; at + 8 <= end;) {
    const next = at + spanAt(message, at);
    if (next > end) return;
    if (tagAt(message, at) === Tag.BatchItem) {
      let operation = -1;
      let status = -1;
      let reason = -1;
      for (let child = at + 8; child + 8 <= next; child += spanAt(message, child)) {
        if (message[child + 3] !== 0x05 || u32(message, child + 4) !== 4 || child + 16 > next) continue; // Enumerations only
        const tag = tagAt(message, child);
        if (tag === Tag.Operation) operation = u32(message, child + 8);
        else if (tag === Tag.ResultStatus) status = u32(message, child + 8);
        else if (tag === Tag.ResultReason) reason = u32(message, child + 8);
      }
      visit(operation, status, reason);
    }
    at = next;
  }
}
