/**
 * KmipClient behaviour against a scripted server over real mutual TLS: Poll, Maximum Response
 * Size and paging, batch error continuation, coalescing, retries, version negotiation, HTTPS.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KmipResultError, type RequestMessage, type ResponseBatchItemInput } from '../../src/kmip/message.ts';
import { payload } from '../../src/kmip/payloads.ts';
import { BatchErrorContinuationOption, Operation, QueryFunction, ResultReason, ResultStatus, Tag } from '../../src/kmip/tables.generated.ts';
import { findChildren, optionalValue } from '../../src/kmip/tree.ts';
import { HttpsTransport } from '../../src/net/https-transport.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { byteString, enumeration, integer, textString } from '../../src/ttlv/build.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { ItemType } from '../../src/ttlv/item.ts';
import { KmipClient, type KmipClientOptions } from '../../src/upstream/client.ts';
import { ScriptedServer, type Handler } from '../helpers/scripted-server.ts';

const V12 = { major: 1, minor: 2 };

async function withServer(handler: Handler, test: (server: ScriptedServer, client: (o?: Partial<KmipClientOptions>) => KmipClient) => Promise<void>, kind: 'ttlv' | 'https' = 'ttlv'): Promise<void> {
  const server = await new ScriptedServer(handler).start(kind);
  const clients: KmipClient[] = [];
  try {
    await test(server, (options = {}) => {
      const transport = kind === 'ttlv' ? new TlsPool(server.endpoint, { minBackoffMs: 1 }) : new HttpsTransport(server.endpoint, '/kmip');
      const client = new KmipClient({ transport, version: V12, ...options });
      clients.push(client);
      return client;
    });
  } finally {
    for (const client of clients) await client.close();
    await server.stop();
  }
}

const ok = (request: RequestMessage, i: number, payloadItems: ResponseBatchItemInput['payload'] = []): ResponseBatchItemInput => ({
  operation: request.batchItems[i]!.operation,
  ...(request.batchItems[i]!.uniqueBatchItemId && { uniqueBatchItemId: request.batchItems[i]!.uniqueBatchItemId }),
  resultStatus: ResultStatus.Success,
  payload: payloadItems,
});

const uidOf = (request: RequestMessage, i = 0): string => String(optionalValue(request.batchItems[i]!.payload, Tag.UniqueIdentifier, ItemType.TextString));

describe('KmipClient: Operation Pending and Poll (KMIP 1.2 §6.7, §4.28)', () => {
  it('polls with back-off until the operation completes, returning its result', async () => {
    const correlation = Uint8Array.of(0xe7, 0x12, 0x5d, 0xe8);
    let polls = 0;
    await withServer(
      (request) => {
        const item = request.batchItems[0]!;
        if (item.operation === Operation.Locate) return [{ operation: Operation.Locate, resultStatus: ResultStatus.OperationPending, asynchronousCorrelationValue: correlation }];
        assert.equal(item.operation, Operation.Poll);
        assert.deepEqual(optionalValue(item.payload, Tag.AsynchronousCorrelationValue, ItemType.ByteString), correlation);
        polls++;
        if (polls < 3) return [{ operation: Operation.Poll, resultStatus: ResultStatus.OperationPending, asynchronousCorrelationValue: correlation }];
        // OASIS TC 3.2: the finished response carries the original operation.
        return [{ operation: Operation.Locate, resultStatus: ResultStatus.Success, payload: [textString(Tag.UniqueIdentifier, 'a'), textString(Tag.UniqueIdentifier, 'b')] }];
      },
      async (_server, client) => {
        const result = await client({ poll: { initialMs: 5, maxMs: 20, deadlineMs: 5000 } }).locate();
        assert.deepEqual(result.uniqueIdentifiers, ['a', 'b']);
        assert.equal(polls, 3);
      },
    );
  });

  it('gives up at the poll deadline with KMIP_POLL_DEADLINE', async () => {
    await withServer(
      () => [{ operation: Operation.Get, resultStatus: ResultStatus.OperationPending, asynchronousCorrelationValue: Uint8Array.of(1) }],
      async (_server, client) => {
        await assert.rejects(client({ poll: { initialMs: 10, maxMs: 10, deadlineMs: 60 } }).get('k'), (e: unknown) => (e as { code?: string }).code === 'KMIP_POLL_DEADLINE');
      },
    );
  });
});

describe('KmipClient: Maximum Response Size and paging (KMIP 1.2 §6.3)', () => {
  const all = Array.from({ length: 10 }, (_, i) => `uid-${i}`);
  /** Answers Locate from `all`, refusing with Response Too Large when the encoded answer exceeds the header's limit. */
  const pagingServer: Handler = (request) => {
    const item = request.batchItems[0]!;
    const max = optionalValue(item.payload, Tag.MaximumItems, ItemType.Integer) ?? all.length;
    const offset = optionalValue(item.payload, Tag.OffsetItems, ItemType.Integer) ?? 0;
    const page = all.slice(offset, offset + max).map((u) => textString(Tag.UniqueIdentifier, u));
    const answer: ResponseBatchItemInput = { operation: item.operation, resultStatus: ResultStatus.Success, payload: page };
    const size = encodeTtlv({ tag: Tag.ResponsePayload, type: ItemType.Structure, value: page }).length + 80;
    if (request.maximumResponseSize !== undefined && size > request.maximumResponseSize) {
      return [{ operation: item.operation, resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.ResponseTooLarge, resultMessage: `${size} > ${request.maximumResponseSize}` }];
    }
    return [answer];
  };

  it('sends Maximum Response Size on Locate, and pages through Response Too Large by halving', async () => {
    await withServer(pagingServer, async (server, client) => {
      const found = await client({ maxResponseSize: 200 }).locateAll({ pageSize: 8 });
      assert.deepEqual(found, all);
      assert.ok(server.requests.every((r) => r.maximumResponseSize === 200));
      const pages = server.requests.map((r) => [optionalValue(r.batchItems[0]!.payload, Tag.MaximumItems, ItemType.Integer), optionalValue(r.batchItems[0]!.payload, Tag.OffsetItems, ItemType.Integer)]);
      // 8 identifiers do not fit in 200 bytes, 4 do: then pages of 4 until a short page.
      assert.deepEqual(pages, [[8, 0], [4, 0], [4, 4], [4, 8]]);
    });
  });

  it('a single Locate that is too large is a clear ResponseTooLarge error', async () => {
    await withServer(pagingServer, async (_server, client) => {
      await assert.rejects(client({ maxResponseSize: 100 }).locate(), (e: unknown) => e instanceof KmipResultError && e.resultReason === 'ResponseTooLarge');
    });
  });
});

describe('KmipClient: explicit batches and Batch Error Continuation (KMIP 1.2 §6.14)', () => {
  /** Fails the second item; then Continue/Stop/Undo as the header asks. */
  const continuation: Handler = (request) => {
    const option = request.batchErrorContinuationOption ?? BatchErrorContinuationOption.Stop;
    const out: ResponseBatchItemInput[] = [];
    for (const [i, item] of request.batchItems.entries()) {
      if (i === 1) {
        out.push({ operation: item.operation, ...(item.uniqueBatchItemId && { uniqueBatchItemId: item.uniqueBatchItemId }), resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.ItemNotFound });
        if (option === BatchErrorContinuationOption.Stop) break;
        if (option === BatchErrorContinuationOption.Undo) {
          out[0] = { ...out[0]!, resultStatus: ResultStatus.OperationUndone };
          delete out[0].payload;
          break;
        }
        continue;
      }
      out.push(ok(request, i, [textString(Tag.UniqueIdentifier, uidOf(request, i))]));
    }
    return out;
  };
  const items = ['a', 'b', 'c'].map((u) => ({ operation: Operation.Activate, payload: payload.activate(u) }));

  it('Continue: every item answered, the failure only in its own place', async () => {
    await withServer(continuation, async (server, client) => {
      const results = await client().batch(items, { batchErrorContinuationOption: BatchErrorContinuationOption.Continue, batchOrderOption: true });
      assert.deepEqual(results.map((r) => r?.resultStatus), [ResultStatus.Success, ResultStatus.OperationFailed, ResultStatus.Success]);
      assert.equal(server.requests[0]!.batchErrorContinuationOption, BatchErrorContinuationOption.Continue);
      assert.equal(server.requests[0]!.batchOrderOption, true);
      assert.ok(server.requests[0]!.batchItems.every((i) => i.uniqueBatchItemId?.length === 4));
    });
  });

  it('Stop: items after the failure have no response', async () => {
    await withServer(continuation, async (_server, client) => {
      const results = await client().batch(items, { batchErrorContinuationOption: BatchErrorContinuationOption.Stop });
      assert.deepEqual(results.map((r) => r?.resultStatus), [ResultStatus.Success, ResultStatus.OperationFailed, undefined]);
    });
  });

  it('Undo: earlier items come back Operation Undone', async () => {
    await withServer(continuation, async (_server, client) => {
      const results = await client().batch(items, { batchErrorContinuationOption: BatchErrorContinuationOption.Undo });
      assert.deepEqual(results.map((r) => r?.resultStatus), [ResultStatus.OperationUndone, ResultStatus.OperationFailed, undefined]);
    });
  });
});

describe('KmipClient: coalescing', () => {
  const getServer: Handler = (request) =>
    request.batchItems.map((item, i) =>
      uidOf(request, i) === 'bad'
        ? { operation: item.operation, ...(item.uniqueBatchItemId && { uniqueBatchItemId: item.uniqueBatchItemId }), resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.ItemNotFound }
        : ok(request, i, [enumeration(Tag.ObjectType, 2), textString(Tag.UniqueIdentifier, uidOf(request, i)), byteString(Tag.Data, Uint8Array.of(i))]),
    );

  it('concurrent calls go out as one batch with Continue; results reach their own callers', async () => {
    await withServer(getServer, async (server, client) => {
      const c = client({ coalesce: { windowMs: 5, maxBatch: 64 } });
      const results = await Promise.allSettled(['k1', 'bad', 'k3'].map((u) => c.get(u)));
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
      assert.equal((results[0] as PromiseFulfilledResult<{ uniqueIdentifier: string }>).value.uniqueIdentifier, 'k1');
      assert.equal((results[2] as PromiseFulfilledResult<{ uniqueIdentifier: string }>).value.uniqueIdentifier, 'k3');
      assert.equal(server.requests.length, 1);
      assert.equal(server.requests[0]!.batchItems.length, 3);
      assert.equal(server.requests[0]!.batchErrorContinuationOption, BatchErrorContinuationOption.Continue);
    });
  });

  it('maxBatch splits a burst into several messages', async () => {
    await withServer(getServer, async (server, client) => {
      const c = client({ coalesce: { windowMs: 5, maxBatch: 4 } });
      await Promise.all(Array.from({ length: 10 }, (_, i) => c.get(`k${i}`)));
      assert.deepEqual(server.requests.map((r) => r.batchItems.length), [4, 4, 2]);
    });
  });

  it('a message refused as a whole (as PyKMIP refuses unknown operations) is resent item by item', async () => {
    await withServer(
      (request) => (request.batchItems.length > 1 ? [{ resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.InvalidMessage }] : getServer(request, 0)),
      async (server, client) => {
        const c = client({ coalesce: { windowMs: 5 } });
        const [a, b] = await Promise.all([c.get('k1'), c.get('k2')]);
        assert.equal(a.uniqueIdentifier, 'k1');
        assert.equal(b.uniqueIdentifier, 'k2');
        assert.deepEqual(server.requests.map((r) => r.batchItems.length), [2, 1, 1]);
      },
    );
  });
});

describe('KmipClient: retries only for idempotent operations', () => {
  it('a Get whose connection drops is retried and succeeds', async () => {
    await withServer(
      (request, index) => (index === 0 ? 'drop' : [ok(request, 0, [enumeration(Tag.ObjectType, 2), textString(Tag.UniqueIdentifier, 'k'), byteString(Tag.Data, Uint8Array.of(1))])]),
      async (server, client) => {
        assert.equal((await client({ coalesce: false }).get('k')).uniqueIdentifier, 'k');
        assert.equal(server.requests.length, 2);
      },
    );
  });

  it('Get Usage Allocation is never retried: a dropped connection is KMIP_OUTCOME_UNKNOWN, sent once', async () => {
    await withServer(
      () => 'drop',
      async (server, client) => {
        await assert.rejects(client({ coalesce: false }).getUsageAllocation('k', 10n), (e: unknown) => (e as { code?: string }).code === 'KMIP_OUTCOME_UNKNOWN');
        assert.equal(server.requests.length, 1);
      },
    );
  });
});

describe('KmipClient: headers and version negotiation', () => {
  it('every request carries a Time Stamp from the clock', async () => {
    await withServer(
      (request) => [ok(request, 0)],
      async (server, client) => {
        await client({ clock: () => new Date('2026-01-02T03:04:05Z'), coalesce: false }).query([QueryFunction.QueryOperations]);
        assert.equal(server.requests[0]!.timeStamp, BigInt(Date.parse('2026-01-02T03:04:05Z') / 1000));
      },
    );
  });

  it('negotiates with Discover Versions and uses the answer on that connection', async () => {
    await withServer(
      (request) =>
        request.batchItems[0]!.operation === Operation.DiscoverVersions
          ? [ok(request, 0, findChildren(request.batchItems[0]!.payload, Tag.ProtocolVersion).slice(2))]
          : [ok(request, 0)],
      async (server, client) => {
        const c = client({ coalesce: false });
        delete (c as unknown as { options: { version?: unknown } }).options.version;
        await c.query([QueryFunction.QueryOperations]);
        await c.query([QueryFunction.QueryOperations]);
        assert.deepEqual(server.requests.map((r) => `${r.protocolVersion.major}.${r.protocolVersion.minor}`), ['1.1', '1.2', '1.2']);
      },
    );
  });

  it('falls back to 1.0 when the server lacks Discover Versions', async () => {
    await withServer(
      (request) =>
        request.batchItems[0]!.operation === Operation.DiscoverVersions
          ? [{ operation: Operation.DiscoverVersions, resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.OperationNotSupported }]
          : [ok(request, 0)],
      async (server, client) => {
        const c = client({ coalesce: false });
        delete (c as unknown as { options: { version?: unknown } }).options.version;
        await c.query([QueryFunction.QueryOperations]);
        assert.deepEqual(server.requests.map((r) => `${r.protocolVersion.major}.${r.protocolVersion.minor}`), ['1.1', '1.0']);
      },
    );
  });
});

describe('KmipClient over the HTTPS profile', () => {
  it('POSTs each message and reads the response', async () => {
    await withServer(
      (request) => [ok(request, 0, [enumeration(Tag.Operation, Operation.Get), integer(Tag.MaximumItems, 1)])],
      async (server, client) => {
        const result = await client({ coalesce: false }).query([QueryFunction.QueryOperations]);
        assert.deepEqual(result.operations, [Operation.Get]);
        assert.equal(server.requests.length, 1);
      },
      'https',
    );
  });
});
