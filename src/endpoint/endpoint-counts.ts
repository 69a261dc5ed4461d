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

export const CONNECTION_EVENTS = ['accepted', 'handshake_refused', 'unregistered', 'over_capacity', 'timed_out', 'framing_lost', 'invalid_message'] as const;
export type ConnectionEvent = (typeof CONNECTION_EVENTS)[number];

const OPERATION_LABEL = new Map<number, string>(CLIENT_OPERATIONS.map((name) => [Operation[name], name]));
const REASONS = enumerationFor(Tag.ResultReason)!.byValue;
const STATUSES = enumerationFor(Tag.ResultStatus)!.byValue;

export class EndpointCounts {
  readonly connections: Record<ConnectionEvent, number> = Object.fromEntries(CONNECTION_EVENTS.map((event) => [event, 0])) as Record<ConnectionEvent, number>;
  /** `${operation} ${result}` → batch items answered. */
  private readonly items = new Map<string, number>();

  connection(event: ConnectionEvent): void {
    this.connections[event]++;
  }

  /** Counts each batch item of a Response Message (TTLV bytes built by the service). */
  response(response: Uint8Array): void {
    forEachBatchItem(response, (operation, status, reason) => {
      const op = operation === undefined ? 'None' : (OPERATION_LABEL.get(operation) ?? 'Other');
      const result = status === ResultStatus.Success ? 'Success' : (reason !== undefined ? REASONS.get(reason) : undefined) ?? (status !== undefined ? STATUSES.get(status) : undefined) ?? 'Other';
      const key = `${op} ${result}`;
      this.items.set(key, (this.items.get(key) ?? 0) + 1);
    });
  }

  requests(): { operation: string; result: string; count: number }[] {
    return [...this.items].map(([key, count]) => {
      const [operation, result] = key.split(' ') as [string, string];
      return { operation, result, count };
    });
  }
}

/**
 * Calls `visit` with the Operation, Result Status and Result Reason of each Batch Item (0x42000F)
 * of a Response Message; stops quietly at anything that does not fit (it only counts).
 */
export function forEachBatchItem(message: Uint8Array, visit: (operation: number | undefined, status: number | undefined, reason: number | undefined) => void): void {
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const header = (at: number) => ({ tag: (view.getUint16(at) << 8) | view.getUint8(at + 2), type: view.getUint8(at + 3), length: view.getUint32(at + 4) });
  if (message.length < 8 || header(0).tag !== Tag.ResponseMessage) return;
  const end = Math.min(message.length, 8 + header(0).length);
  for (let at = 8; at + 8 <= end;) {
    const item = header(at);
    const next = at + 8 + Math.ceil(item.length / 8) * 8;
    if (next > end) return;
    if (item.tag === Tag.BatchItem) {
      let operation: number | undefined;
      let status: number | undefined;
      let reason: number | undefined;
      for (let child = at + 8; child + 8 <= next;) {
        const field = header(child);
        if (field.type === 0x05 && field.length === 4 && child + 16 <= next) {
          const value = view.getUint32(child + 8);
          if (field.tag === Tag.Operation) operation = value;
          else if (field.tag === Tag.ResultStatus) status = value;
          else if (field.tag === Tag.ResultReason) reason = value;
        }
        child += 8 + Math.ceil(field.length / 8) * 8;
      }
      visit(operation, status, reason);
    }
    at = next;
  }
}
