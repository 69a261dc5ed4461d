/**
 * A local KMIP client's batch (KMIP 1.2 §6.12–6.14, §4 intro; FACTS.md §5.6–5.8): items run in
 * order — which satisfies Batch Order Option true, and is one of the orders false allows — with
 * the ID Placeholder carried from item to item, Batch Error Continuation Stop (the default) or
 * Continue, and Maximum Response Size. Undo is not supported: the forwarded writes cannot be
 * taken back at the key server, and a server that does not support an option other than Stop
 * rejects the whole request (§6.14), which is what happens here, before any item runs.
 */
import type { ProtocolVersion, RequestMessage, ResponseBatchItemInput } from '../kmip/message.ts';
import { buildResponseMessage } from '../kmip/message.ts';
import { BatchErrorContinuationOption, ResultReason, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { findChild, findChildren, optionalValue } from '../kmip/tree.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import { Refusal } from './refusal.ts';

export type RequestItem = RequestMessage['batchItems'][number];

/** What one item knows of its batch. */
export interface BatchContext {
  readonly version: ProtocolVersion;
  /** The request's id and the item's index: names the item's effects (a usage grant). */
  itemId: string;
  /** KMIP 1.2 §4 intro: the Unique Identifier the last Create, Register or single-result Locate produced. */
  placeholder: string | undefined;
  /** The next item of the batch, if any (an offline Create followed by Activate activates at once). */
  next: RequestItem | undefined;
  /** Keys the key pool handed out activated for a Create of this batch: their Activate is done. */
  readonly activatedOffline: Set<string>;
  /** An item had an effect (a usage grant). */
  effect: boolean;
}

export interface ItemResult {
  item: ResponseBatchItemInput;
  /** The key the item was about, when it named or produced one (for the audit event). */
  uid: string | undefined;
}

/** Runs the items; `run` returns a Success payload or throws (a Refusal, or an error `refuse` turns into one). */
export async function runBatch(
  request: RequestMessage,
  message: TtlvItem,
  requestId: string,
  run: (item: RequestItem, context: BatchContext) => Promise<TtlvItem[]>,
  refuse: (error: unknown, item: RequestItem) => Refusal,
): Promise<{ results: ItemResult[]; effect: boolean }> {
  const continuation = request.batchErrorContinuationOption ?? BatchErrorContinuationOption.Stop;
  const rawItems = findChildren(message, Tag.BatchItem);
  const base = (item: RequestItem) => ({ operation: item.operation, ...(item.uniqueBatchItemId && { uniqueBatchItemId: item.uniqueBatchItemId }) });
  if (request.batchItems.length > 1 && continuation !== BatchErrorContinuationOption.Stop && continuation !== BatchErrorContinuationOption.Continue) {
    return {
      results: request.batchItems.map((item) => ({ uid: undefined, item: { ...base(item), resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.FeatureNotSupported, resultMessage: 'Batch Error Continuation Option Undo is not supported: nothing was done' } })),
      effect: false,
    };
  }
  const context: BatchContext = { version: request.protocolVersion, itemId: requestId, placeholder: undefined, next: undefined, activatedOffline: new Set(), effect: false };
  const results: ItemResult[] = [];
  for (const [index, item] of request.batchItems.entries()) {
    context.itemId = `${requestId}/${index}`;
    context.next = request.batchItems[index + 1];
    let named: string | undefined;
    try {
      named = optionalValue(item.payload, Tag.UniqueIdentifier, ItemType.TextString);
      criticalExtension(rawItems[index]);
      const payload = await run(item, context);
      const produced = payload.find((c) => c.tag === Tag.UniqueIdentifier)?.value;
      results.push({ uid: named ?? (typeof produced === 'string' ? produced : context.placeholder), item: { ...base(item), resultStatus: ResultStatus.Success, payload } });
    } catch (error) {
      const refusal = refuse(error, item);
      results.push({ uid: named ?? context.placeholder, item: { ...base(item), resultStatus: ResultStatus.OperationFailed, resultReason: refusal.reason, resultMessage: refusal.message } });
      // §6.14 Stop: the items after a failed one are not processed and get no response item.
      if (continuation === BatchErrorContinuationOption.Stop) break;
    }
  }
  return { results, effect: context.effect };
}

/** KMIP 1.2 §6.16: a Message Extension with Criticality Indicator true that the server does not know fails its item (OASIS TC 7.2). */
function criticalExtension(raw: TtlvItem | undefined): void {
  const extension = raw && findChild(raw, Tag.MessageExtension);
  if (extension && optionalValue(extension, Tag.CriticalityIndicator, ItemType.Boolean) === true) {
    throw new Refusal(ResultReason.FeatureNotSupported, 'Critical Message Extension not recognized');
  }
}

/**
 * The Response Message; when it exceeds the request's Maximum Response Size, each item that
 * carries a payload fails with Response Too Large instead (KMIP 1.2 §6.3, OASIS TC 12.1).
 */
export function encodeResponse(version: ProtocolVersion, items: ResponseBatchItemInput[], maximumResponseSize: number | undefined): Uint8Array {
  const response = encodeTtlv(buildResponseMessage(version, items));
  if (maximumResponseSize === undefined || response.length <= maximumResponseSize) return response;
  for (const [i, item] of items.entries()) {
    if (item.payload === undefined) continue;
    items[i] = {
      ...(item.operation !== undefined && { operation: item.operation }),
      ...(item.uniqueBatchItemId && { uniqueBatchItemId: item.uniqueBatchItemId }),
      resultStatus: ResultStatus.OperationFailed,
      resultReason: ResultReason.ResponseTooLarge,
      resultMessage: `the response of ${response.length} bytes exceeds Maximum Response Size ${maximumResponseSize}`,
    };
  }
  return encodeTtlv(buildResponseMessage(version, items));
}
