/**
 * Batches of a local KMIP client (KMIP 1.2 §6.3, §6.12–6.16, §4 intro; FACTS.md §5.6–5.8): the ID
 * Placeholder (Locate + Get, Create + Get, Create + Activate), items in order, Batch Error
 * Continuation Stop and Continue (Undo refused as a whole), Maximum Response Size, a critical
 * Message Extension, and messages that are no KMIP Request Message.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { nameValue, type Attribute } from '../../src/kmip/attributes.ts';
import { buildRequestMessage, parseResponseMessage } from '../../src/kmip/message.ts';
import { keyBlockOf, keyMaterialOf, payload, readAttributes, readGet, readLocate, readUniqueIdentifier } from '../../src/kmip/payloads.ts';
import { BatchErrorContinuationOption, ObjectType, Operation, QueryFunction, ResultReason, ResultStatus, State, Tag } from '../../src/kmip/tables.generated.ts';
import { boolean, integer, structure, textString } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import type { TtlvItem } from '../../src/ttlv/item.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { localClient, startEdge } from '../helpers/edge.ts';

let edge: Awaited<ReturnType<typeof startEdge>>;
let single: string;
const group = (name: string): Attribute => ({ name: 'Object Group', value: textString(Tag.AttributeValue, name) });
const lib = localClient('lib-b', [{ objectGroup: 'batch' }]);
const byName = (name: string) => payload.locate({ attributes: [{ name: 'Name', value: nameValue(name) }] });
const material = (item: { payload: TtlvItem | undefined }) => toHex(keyMaterialOf(keyBlockOf(readGet(item.payload!).object)));
const upstreamBytes = async (uid: string) => toHex(keyMaterialOf(keyBlockOf((await edge.admin.get(uid)).object)));
const ids = [1, 2, 3, 4].map((n) => new Uint8Array([n]));

before(async () => {
  edge = await startEdge();
  single = await edge.admin.create(ObjectType.SymmetricKey, aesKey('batch-single', undefined, [group('batch')]));
  await edge.admin.activate(single);
  for (let i = 0; i < 2; i++) await edge.admin.create(ObjectType.SymmetricKey, aesKey('batch-twice', undefined, [group('batch')]));
});

after(() => edge.stop());

describe('edge KMIP service: the ID Placeholder', () => {
  it('Locate + Get: the Get without a Unique Identifier gets the one key located (OASIS TC 3.1.4)', async () => {
    const response = await edge.ask(lib, [{ operation: Operation.Locate, payload: byName('batch-single'), uniqueBatchItemId: ids[0]! }, { operation: Operation.Get, payload: [], uniqueBatchItemId: ids[1]! }], { batchOrderOption: true });
    assert.deepEqual(response.batchItems.map((i) => i.resultStatus), [ResultStatus.Success, ResultStatus.Success]);
    assert.deepEqual(response.batchItems.map((i) => [...i.uniqueBatchItemId!]), [[1], [2]], 'Unique Batch Item IDs echoed');
    assert.equal(material(response.batchItems[1]!), await upstreamBytes(single));
  });

  it('a Locate finding two keys empties the placeholder: the Get after it fails; with Stop nothing after it is answered, with Continue the rest is', async () => {
    const items = [
      { operation: Operation.Locate, payload: byName('batch-twice'), uniqueBatchItemId: ids[0]! },
      { operation: Operation.Get, payload: [], uniqueBatchItemId: ids[1]! },
      { operation: Operation.Query, payload: payload.query([QueryFunction.QueryObjects]), uniqueBatchItemId: ids[2]! },
    ];
    const stopped = await edge.ask(lib, items, { batchOrderOption: true });
    assert.equal(readLocate(stopped.batchItems[0]!.payload!).uniqueIdentifiers.length, 2);
    assert.equal(stopped.batchItems[1]!.resultReason, ResultReason.ItemNotFound);
    assert.equal(stopped.batchItems.length, 2, 'Stop (the default): the item after the failed one gets no response item');
    const continued = await edge.ask(lib, items, { batchOrderOption: true, batchErrorContinuationOption: BatchErrorContinuationOption.Continue });
    assert.deepEqual(continued.batchItems.map((i) => i.resultStatus), [ResultStatus.Success, ResultStatus.OperationFailed, ResultStatus.Success]);
  });

  it('Create + Get, and Create + Activate + Get: each item uses the key the Create made', async () => {
    const created = await edge.ask(lib, [
      { operation: Operation.Create, payload: payload.create(ObjectType.SymmetricKey, aesKey('batch-created')) },
      { operation: Operation.Get, payload: [] },
    ], { batchOrderOption: true });
    assert.deepEqual(created.batchItems.map((i) => i.resultStatus), [ResultStatus.Success, ResultStatus.Success], created.batchItems[1]!.resultMessage);
    const uid = readUniqueIdentifier(created.batchItems[0]!.payload!);
    assert.equal(material(created.batchItems[1]!), await upstreamBytes(uid));
    const activated = await edge.ask(lib, [
      { operation: Operation.Create, payload: payload.create(ObjectType.SymmetricKey, aesKey('batch-activated')) },
      { operation: Operation.Activate, payload: [] },
      { operation: Operation.GetAttributes, payload: payload.getAttributes(undefined, ['State']) },
    ], { batchOrderOption: true });
    assert.deepEqual(activated.batchItems.map((i) => i.resultStatus), [ResultStatus.Success, ResultStatus.Success, ResultStatus.Success]);
    assert.equal(readAttributes(activated.batchItems[2]!.payload!).attributes[0]!.value!.value, State.Active, 'the Get Attributes after the Activate sees it Active: items run in order');
  });

  it('items run in order: a Create, an Add Attribute of an x- attribute to it, a Locate by that attribute finds it', async () => {
    const tag: Attribute = { name: 'x-barcode', value: textString(Tag.AttributeValue, 'BATCH-ORDER-1') };
    const response = await edge.ask(lib, [
      { operation: Operation.Create, payload: payload.create(ObjectType.SymmetricKey, aesKey('batch-ordered')) },
      { operation: Operation.AddAttribute, payload: payload.addAttribute(undefined, tag) },
      { operation: Operation.Locate, payload: payload.locate({ attributes: [tag] }) },
    ], { batchOrderOption: true });
    assert.deepEqual(response.batchItems.map((i) => i.resultStatus), [ResultStatus.Success, ResultStatus.Success, ResultStatus.Success], response.batchItems.map((i) => i.resultMessage).join(' '));
    const uid = readUniqueIdentifier(response.batchItems[0]!.payload!);
    assert.deepEqual(readLocate(response.batchItems[2]!.payload!).uniqueIdentifiers, [uid]);
  });
});

describe('edge KMIP service: batch options and limits', () => {
  it('Batch Error Continuation Undo is refused as a whole: no item is done', async () => {
    const response = await edge.ask(lib, [
      { operation: Operation.Create, payload: payload.create(ObjectType.SymmetricKey, aesKey('batch-undo')) },
      { operation: Operation.Get, payload: [] },
    ], { batchOrderOption: true, batchErrorContinuationOption: BatchErrorContinuationOption.Undo });
    assert.deepEqual(response.batchItems.map((i) => i.resultReason), [ResultReason.FeatureNotSupported, ResultReason.FeatureNotSupported]);
    assert.deepEqual((await edge.admin.locate({ attributes: [{ name: 'Name', value: nameValue('batch-undo') }] })).uniqueIdentifiers, [], 'nothing was created');
  });

  it('Maximum Response Size: Response Too Large when the answer does not fit, the answer when it does (OASIS TC 12.1)', async () => {
    const get = [{ operation: Operation.Get, payload: payload.get(single) }];
    const small = await edge.ask(lib, get, { maximumResponseSize: 100 });
    assert.equal(small.batchItems[0]!.resultReason, ResultReason.ResponseTooLarge);
    assert.ok(small.bytes <= 256);
    const fits = await edge.ask(lib, get, { maximumResponseSize: 2048 });
    assert.equal(fits.batchItems[0]!.resultStatus, ResultStatus.Success);
    assert.ok(fits.bytes > 100 && fits.bytes <= 2048, `${fits.bytes} bytes`);
    const locate = await edge.ask(lib, [{ operation: Operation.Locate, payload: payload.locate({ attributes: [group('batch')] }) }], { maximumResponseSize: 120 });
    assert.equal(locate.batchItems[0]!.resultReason, ResultReason.ResponseTooLarge);
  });

  it('a critical Message Extension fails its item (Feature Not Supported, OASIS TC 7.2); a non-critical one is ignored (TC 7.1)', async () => {
    const withExtension = (critical: boolean): Uint8Array => {
      const message = buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Get, payload: payload.get(single) }]);
      const extension = structure(Tag.MessageExtension, [textString(Tag.VendorIdentification, 'ExampleVendor'), boolean(Tag.CriticalityIndicator, critical), structure(Tag.VendorExtension, [])]);
      const [header, item] = message.value as TtlvItem[];
      return encodeTtlv({ ...message, value: [header!, { ...item!, value: [...(item!.value as TtlvItem[]), extension] }] } as TtlvItem);
    };
    const answer = async (critical: boolean) => parseResponseMessage(decodeTtlv((await edge.edge.handle(lib, withExtension(critical), `ext-${critical}`)).response)).batchItems[0]!;
    const critical = await answer(true);
    assert.equal(critical.resultReason, ResultReason.FeatureNotSupported);
    assert.equal((await answer(false)).resultStatus, ResultStatus.Success);
  });

  it('no KMIP Request Message: Invalid Message, and the door is told to close the connection; a KMIP 2.0 request: Invalid Message, at 1.4', async () => {
    for (const bytes of [new Uint8Array([1, 2, 3, 4]), encodeTtlv(textString(Tag.RequestMessage, 'nope')), encodeTtlv(structure(Tag.RequestMessage, [structure(Tag.RequestHeader, [integer(Tag.BatchCount, 3)])]))]) {
      const answer = await edge.edge.handle(lib, bytes, 'garbage');
      assert.equal(answer.invalid, true);
      assert.equal(parseResponseMessage(decodeTtlv(answer.response)).batchItems[0]!.resultReason, ResultReason.InvalidMessage);
    }
    const v2 = await edge.ask(lib, [{ operation: Operation.Get, payload: payload.get(single) }], {}, { major: 2, minor: 0 });
    assert.equal(v2.invalid, false);
    assert.equal(v2.batchItems[0]!.resultReason, ResultReason.InvalidMessage);
    assert.deepEqual(v2.protocolVersion, { major: 1, minor: 4 });
    const wrongCount = structure(Tag.RequestMessage, [structure(Tag.RequestHeader, [structure(Tag.ProtocolVersion, [integer(Tag.ProtocolVersionMajor, 1), integer(Tag.ProtocolVersionMinor, 4)]), integer(Tag.BatchCount, 2)])]);
    const counted = await edge.edge.handle(lib, encodeTtlv(wrongCount), 'count');
    assert.equal(counted.invalid, true);
    assert.deepEqual(parseResponseMessage(decodeTtlv(counted.response)).protocolVersion, { major: 1, minor: 4 }, 'answered in the version of the request when it can be read');
  });
});
