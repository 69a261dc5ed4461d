/**
 * Server-initiated Put and Notify (KMIP 1.2 §5.1–5.2, FACTS.md §5.4): the development server
 * sends them, as Request Messages with a Time Stamp, to clients registered out of band. It
 * authenticates with its server certificate and verifies each endpoint against its CA. A push
 * counts as acknowledged only when the client answers Success; otherwise it is retried with
 * back-off, and until then it is listed as unacknowledged.
 */
import type { Attribute } from '../kmip/attributes.ts';
import { notifyPayload, putPayload } from '../kmip/push.ts';
import { buildRequestMessage, parseResponseMessage, type ProtocolVersion } from '../kmip/message.ts';
import { Operation, ResultStatus } from '../kmip/tables.generated.ts';
import { tlsConnectionOptions } from '../net/tls-options.ts';
import { TtlvConnection } from '../net/ttlv-connection.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import type { TtlvItem } from '../ttlv/item.ts';

export interface PushEndpoint {
  host: string;
  port: number;
}

export interface PushRecord {
  id: number;
  endpoint: string;
  operation: 'Put' | 'Notify';
  uniqueIdentifier: string;
  attempts: number;
  acknowledged: boolean;
  gaveUp: boolean;
  lastError: string | undefined;
}

export interface PushOptions {
  /** PEM: the CA that endpoints' certificates must chain to, and our identity towards them. */
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
  version?: ProtocolVersion;
  timeoutMs?: number;
  /** First retry delay; doubles each attempt up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  maxAttempts?: number;
  now?: () => Date;
}

interface Pending extends PushRecord {
  target: PushEndpoint;
  message: TtlvItem[];
  settled: Promise<void>;
  settle: () => void;
}

export class PushSender {
  private readonly records: Pending[] = [];
  private nextId = 1;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly endpoints: readonly PushEndpoint[],
    private readonly options: PushOptions,
  ) {}

  /** Notify: the changed attributes, always with Last Change Date; a deleted one has no value. */
  notify(uniqueIdentifier: string, changed: readonly Attribute[]): Promise<PushRecord[]> {
    return this.send('Notify', uniqueIdentifier, notifyPayload(uniqueIdentifier, changed));
  }

  /** Put New, or Replace with the Replaced Unique Identifier; the object and its attributes. */
  put(uniqueIdentifier: string, object: TtlvItem, attributes: readonly Attribute[], replaces?: string): Promise<PushRecord[]> {
    return this.send('Put', uniqueIdentifier, putPayload(uniqueIdentifier, object, attributes, replaces));
  }

  /** Pushes not (yet) acknowledged, including those given up on. */
  unacknowledged(): PushRecord[] {
    return this.records.filter((r) => !r.acknowledged).map(publicRecord);
  }

  all(): PushRecord[] {
    return this.records.map(publicRecord);
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    for (const record of this.records) record.settle();
  }

  /** Queues one push per endpoint; resolves once each is acknowledged or given up on. */
  private async send(operation: 'Put' | 'Notify', uniqueIdentifier: string, payload: TtlvItem[]): Promise<PushRecord[]> {
    const created = this.endpoints.map((target) => {
      let settle!: () => void;
      const settled = new Promise<void>((resolve) => (settle = resolve));
      const record: Pending = {
        id: this.nextId++, endpoint: `${target.host}:${target.port}`, operation, uniqueIdentifier, attempts: 0,
        acknowledged: false, gaveUp: false, lastError: undefined, target, message: payload, settled, settle,
      };
      this.records.push(record);
      void this.attempt(record);
      return record;
    });
    await Promise.all(created.map((r) => r.settled));
    return created.map(publicRecord);
  }

  private async attempt(record: Pending): Promise<void> {
    if (this.closed) return;
    record.attempts++;
    try {
      const connection = await TtlvConnection.open(
        tlsConnectionOptions({ ...record.target, ca: this.options.ca, cert: this.options.cert, key: this.options.key }),
        this.options.timeoutMs ?? 5000,
        64 * 1024,
      );
      try {
        // KMIP 1.2 §6.5: server-initiated requests carry a Time Stamp.
        const request = buildRequestMessage(this.options.version ?? { major: 1, minor: 2 }, [{ operation: record.operation === 'Put' ? Operation.Put : Operation.Notify, payload: record.message }], { timeStamp: (this.options.now ?? (() => new Date()))() });
        const response = parseResponseMessage(decodeTtlv(await connection.roundTrip(encodeTtlv(request), this.options.timeoutMs ?? 5000)));
        const item = response.batchItems[0];
        if (item?.resultStatus !== ResultStatus.Success) throw new Error(`the client answered ${item ? `status ${item.resultStatus}, reason ${item.resultReason}` : 'no batch item'}`);
        record.acknowledged = true;
        record.lastError = undefined;
        record.settle();
      } finally {
        connection.close();
      }
    } catch (error) {
      record.lastError = (error as Error).message;
      if (record.attempts >= (this.options.maxAttempts ?? 8)) {
        record.gaveUp = true;
        record.settle();
        return;
      }
      const delay = Math.min(this.options.maxRetryMs ?? 30_000, (this.options.retryMs ?? 200) * 2 ** (record.attempts - 1));
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void this.attempt(record);
      }, delay);
      this.timers.add(timer);
    }
  }
}

function publicRecord(record: Pending): PushRecord {
  const { id, endpoint, operation, uniqueIdentifier, attempts, acknowledged, gaveUp, lastError } = record;
  return { id, endpoint, operation, uniqueIdentifier, attempts, acknowledged, gaveUp, lastError };
}
