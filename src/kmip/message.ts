/**
 * KMIP request and response messages (KMIP 1.2 §7.1–7.2, §6; 1.4 §6.18–6.19): building a Request
 * Message from batch items, and reading a Response Message into plain data.
 */
import { KmipEdgeError } from '../errors.ts';
import { boolean, byteString, dateTime, enumeration, integer, structure, textString } from '../ttlv/build.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import { enumerationText } from './vocabulary.ts';
import { ResultStatus, Tag } from './tables.generated.ts';
import { childrenOf, findChild, findChildren, invalidMessage, optionalValue, requiredChild, requiredValue } from './tree.ts';

export interface ProtocolVersion {
  major: number;
  minor: number;
}

export const KMIP_VERSIONS: readonly ProtocolVersion[] = [
  { major: 1, minor: 4 },
  { major: 1, minor: 3 },
  { major: 1, minor: 2 },
  { major: 1, minor: 1 },
  { major: 1, minor: 0 },
];

export function formatVersion(v: ProtocolVersion): string {
  return `${v.major}.${v.minor}`;
}

export function parseVersion(text: string): ProtocolVersion {
  const match = /^(\d+)\.(\d+)$/.exec(text);
  const version = match ? { major: Number(match[1]), minor: Number(match[2]) } : undefined;
  if (!version || !KMIP_VERSIONS.some((v) => v.major === version.major && v.minor === version.minor)) {
    throw new KmipEdgeError('KMIP_VERSION_UNSUPPORTED', `protocol version ${JSON.stringify(text)} is not one of 1.0–1.4`);
  }
  return version;
}

export function protocolVersionItem(v: ProtocolVersion): TtlvItem {
  return structure(Tag.ProtocolVersion, [integer(Tag.ProtocolVersionMajor, v.major), integer(Tag.ProtocolVersionMinor, v.minor)]);
}

export function readProtocolVersion(item: TtlvItem): ProtocolVersion {
  return { major: requiredValue(item, Tag.ProtocolVersionMajor, ItemType.Integer), minor: requiredValue(item, Tag.ProtocolVersionMinor, ItemType.Integer) };
}

export interface RequestBatchItem {
  operation: number;
  /** Children of the Request Payload. */
  payload: TtlvItem[];
  uniqueBatchItemId?: Uint8Array;
}

export interface RequestHeaderOptions {
  maximumResponseSize?: number;
  /** KMIP 1.4 §6.18; sent only at protocol 1.4. */
  clientCorrelationValue?: string;
  asynchronousIndicator?: boolean;
  /** KMIP 1.2 §6.14 Continue 1, Stop 2, Undo 3; only meaningful with several items. */
  batchErrorContinuationOption?: number;
  batchOrderOption?: boolean;
  timeStamp?: Date;
}

/** Request Message 0x420078 with its header fields in the order of KMIP 1.2 §7.2 Table 232. */
export function buildRequestMessage(version: ProtocolVersion, items: readonly RequestBatchItem[], options: RequestHeaderOptions = {}): TtlvItem {
  const header: TtlvItem[] = [protocolVersionItem(version)];
  if (options.maximumResponseSize !== undefined) header.push(integer(Tag.MaximumResponseSize, options.maximumResponseSize));
  if (options.clientCorrelationValue !== undefined && version.major === 1 && version.minor >= 4) {
    header.push(textString(Tag.ClientCorrelationValue, options.clientCorrelationValue));
  }
  if (options.asynchronousIndicator !== undefined) header.push(boolean(Tag.AsynchronousIndicator, options.asynchronousIndicator));
  if (options.batchErrorContinuationOption !== undefined) header.push(enumeration(Tag.BatchErrorContinuationOption, options.batchErrorContinuationOption));
  if (options.batchOrderOption !== undefined) header.push(boolean(Tag.BatchOrderOption, options.batchOrderOption));
  if (options.timeStamp !== undefined) header.push(dateTime(Tag.TimeStamp, options.timeStamp));
  header.push(integer(Tag.BatchCount, items.length));
  const batch = items.map((item) => {
    const fields: TtlvItem[] = [enumeration(Tag.Operation, item.operation)];
    if (item.uniqueBatchItemId !== undefined) fields.push(byteString(Tag.UniqueBatchItemID, item.uniqueBatchItemId));
    fields.push(structure(Tag.RequestPayload, item.payload));
    return structure(Tag.BatchItem, fields);
  });
  return structure(Tag.RequestMessage, [structure(Tag.RequestHeader, header), ...batch]);
}

export interface ResponseBatchItem {
  operation: number | undefined;
  uniqueBatchItemId: Uint8Array | undefined;
  resultStatus: number;
  resultReason: number | undefined;
  resultMessage: string | undefined;
  asynchronousCorrelationValue: Uint8Array | undefined;
  /** The Response Payload Structure, when present. */
  payload: TtlvItem | undefined;
}

export interface ResponseMessage {
  protocolVersion: ProtocolVersion;
  timeStamp: bigint;
  batchItems: ResponseBatchItem[];
}

/** The header and Batch Items of a message, after checking its tag and its Batch Count. */
function headerAndItems(message: TtlvItem, messageTag: number, headerTag: number, what: string): { header: TtlvItem; items: TtlvItem[] } {
  if (message.tag !== messageTag) throw invalidMessage(`expected ${what}, got tag 0x${message.tag.toString(16)}`);
  const header = requiredChild(message, headerTag);
  const batchCount = requiredValue(header, Tag.BatchCount, ItemType.Integer);
  const items = findChildren(message, Tag.BatchItem);
  if (items.length !== batchCount) throw invalidMessage(`Batch Count says ${batchCount}, the message has ${items.length} Batch Items`);
  return { header, items };
}

/** Reads a Response Message 0x42007B (KMIP 1.2 §7.2); throws KMIP_MESSAGE_INVALID when malformed. */
export function parseResponseMessage(message: TtlvItem): ResponseMessage {
  const { header, items } = headerAndItems(message, Tag.ResponseMessage, Tag.ResponseHeader, 'a Response Message');
  return {
    protocolVersion: readProtocolVersion(requiredChild(header, Tag.ProtocolVersion)),
    timeStamp: requiredValue(header, Tag.TimeStamp, ItemType.DateTime),
    batchItems: items.map((item) => {
      const payload = findChild(item, Tag.ResponsePayload);
      if (payload) childrenOf(payload);
      return {
        operation: optionalValue(item, Tag.Operation, ItemType.Enumeration),
        uniqueBatchItemId: optionalValue(item, Tag.UniqueBatchItemID, ItemType.ByteString),
        resultStatus: requiredValue(item, Tag.ResultStatus, ItemType.Enumeration),
        resultReason: optionalValue(item, Tag.ResultReason, ItemType.Enumeration),
        resultMessage: optionalValue(item, Tag.ResultMessage, ItemType.TextString),
        asynchronousCorrelationValue: optionalValue(item, Tag.AsynchronousCorrelationValue, ItemType.ByteString),
        payload,
      };
    }),
  };
}

/**
 * A KMIP operation that the server answered with a failure (KMIP 1.2 §11): code
 * KMIP_OPERATION_FAILED, with the result in the spec's words (CLI.md: "OperationFailed",
 * "ItemNotFound").
 */
export class KmipResultError extends KmipEdgeError {
  readonly resultStatus: string;
  readonly resultReason: string | undefined;
  readonly resultMessage: string | undefined;

  constructor(item: Pick<ResponseBatchItem, 'resultStatus' | 'resultReason' | 'resultMessage'>, operation?: number) {
    const status = enumerationText(Tag.ResultStatus, item.resultStatus);
    const reason = item.resultReason === undefined ? undefined : enumerationText(Tag.ResultReason, item.resultReason);
    const op = operation === undefined ? 'operation' : enumerationText(Tag.Operation, operation);
    super('KMIP_OPERATION_FAILED', `${op}: ${status}${reason ? ` / ${reason}` : ''}${item.resultMessage ? `: ${item.resultMessage}` : ''}`);
    this.resultStatus = status;
    this.resultReason = reason;
    this.resultMessage = item.resultMessage;
  }

  toJSON(): { resultStatus: string; resultReason?: string; resultMessage?: string } {
    return {
      resultStatus: this.resultStatus,
      ...(this.resultReason !== undefined && { resultReason: this.resultReason }),
      ...(this.resultMessage !== undefined && { resultMessage: this.resultMessage }),
    };
  }
}

export function isSuccess(item: ResponseBatchItem): boolean {
  return item.resultStatus === ResultStatus.Success;
}

export interface ResponseBatchItemInput {
  operation?: number;
  uniqueBatchItemId?: Uint8Array;
  resultStatus: number;
  resultReason?: number;
  resultMessage?: string;
  asynchronousCorrelationValue?: Uint8Array;
  /** Children of the Response Payload; absent means no payload. */
  payload?: TtlvItem[];
}

/** Response Message 0x42007B (KMIP 1.2 §7.2 Table 233), for servers and for Put/Notify acknowledgements. */
export function buildResponseMessage(version: ProtocolVersion, items: readonly ResponseBatchItemInput[], timeStamp: Date = new Date()): TtlvItem {
  const header = structure(Tag.ResponseHeader, [protocolVersionItem(version), dateTime(Tag.TimeStamp, timeStamp), integer(Tag.BatchCount, items.length)]);
  const batch = items.map((item) => {
    const fields: TtlvItem[] = [];
    if (item.operation !== undefined) fields.push(enumeration(Tag.Operation, item.operation));
    if (item.uniqueBatchItemId !== undefined) fields.push(byteString(Tag.UniqueBatchItemID, item.uniqueBatchItemId));
    fields.push(enumeration(Tag.ResultStatus, item.resultStatus));
    if (item.resultReason !== undefined) fields.push(enumeration(Tag.ResultReason, item.resultReason));
    if (item.resultMessage !== undefined) fields.push(textString(Tag.ResultMessage, item.resultMessage));
    if (item.asynchronousCorrelationValue !== undefined) fields.push(byteString(Tag.AsynchronousCorrelationValue, item.asynchronousCorrelationValue));
    if (item.payload !== undefined) fields.push(structure(Tag.ResponsePayload, item.payload));
    return structure(Tag.BatchItem, fields);
  });
  return structure(Tag.ResponseMessage, [header, ...batch]);
}

export interface RequestMessage {
  protocolVersion: ProtocolVersion;
  maximumResponseSize: number | undefined;
  asynchronousIndicator: boolean | undefined;
  batchErrorContinuationOption: number | undefined;
  batchOrderOption: boolean | undefined;
  timeStamp: bigint | undefined;
  batchItems: { operation: number; uniqueBatchItemId: Uint8Array | undefined; payload: TtlvItem }[];
}

/** Reads a Request Message 0x420078 (KMIP 1.2 §7.2); throws KMIP_MESSAGE_INVALID when malformed. */
export function parseRequestMessage(message: TtlvItem): RequestMessage {
  const { header, items } = headerAndItems(message, Tag.RequestMessage, Tag.RequestHeader, 'a Request Message');
  return {
    protocolVersion: readProtocolVersion(requiredChild(header, Tag.ProtocolVersion)),
    maximumResponseSize: optionalValue(header, Tag.MaximumResponseSize, ItemType.Integer),
    asynchronousIndicator: optionalValue(header, Tag.AsynchronousIndicator, ItemType.Boolean),
    batchErrorContinuationOption: optionalValue(header, Tag.BatchErrorContinuationOption, ItemType.Enumeration),
    batchOrderOption: optionalValue(header, Tag.BatchOrderOption, ItemType.Boolean),
    timeStamp: optionalValue(header, Tag.TimeStamp, ItemType.DateTime),
    batchItems: items.map((item) => ({
      operation: requiredValue(item, Tag.Operation, ItemType.Enumeration),
      uniqueBatchItemId: optionalValue(item, Tag.UniqueBatchItemID, ItemType.ByteString),
      payload: requiredChild(item, Tag.RequestPayload),
    })),
  };
}
