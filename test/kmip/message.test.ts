/** Message builders and readers, checked against the OASIS bytes of FACTS.md §7. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nameValue } from '../../src/kmip/attributes.ts';
import { buildRequestMessage, buildResponseMessage, parseRequestMessage, parseResponseMessage } from '../../src/kmip/message.ts';
import { payload, readUniqueIdentifier } from '../../src/kmip/payloads.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Operation, ResultStatus, Tag } from '../../src/kmip/tables.generated.ts';
import { enumeration, integer, structure, textString } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { fromHex, toHex } from '../../src/ttlv/hex.ts';
import { FACTS_EXAMPLES } from '../fixtures/facts-vectors.ts';

const V11 = { major: 1, minor: 1 };

describe('KMIP messages', () => {
  it('builds E1 (Create AES-128 Encrypt|Decrypt, KMIP 1.1 TC 3.1.1) byte for byte', () => {
    const message = buildRequestMessage(V11, [{
      operation: Operation.Create,
      payload: payload.create(ObjectType.SymmetricKey, [
        { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, CryptographicAlgorithm.AES) },
        { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 128) },
        { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt) },
      ]),
    }]);
    assert.equal(toHex(encodeTtlv(message)), FACTS_EXAMPLES.E1);
  });

  it('builds E4 (Locate by Object Type and Name) byte for byte', () => {
    const message = buildRequestMessage(V11, [{
      operation: Operation.Locate,
      payload: payload.locate({ attributes: [{ name: 'Object Type', value: enumeration(Tag.AttributeValue, ObjectType.SymmetricKey) }, { name: 'Name', value: nameValue('Key1') }] }),
    }]);
    assert.equal(toHex(encodeTtlv(message)), FACTS_EXAMPLES.E4);
  });

  it('builds E2 (Create response) byte for byte and reads it back', () => {
    const message = buildResponseMessage(V11, [{
      operation: Operation.Create,
      resultStatus: ResultStatus.Success,
      payload: [enumeration(Tag.ObjectType, ObjectType.SymmetricKey), textString(Tag.UniqueIdentifier, 'fb4b5b9c-6188-4c63-8142-fe9c328129fc')],
    }], new Date('2012-04-27T08:12:21Z'));
    assert.equal(toHex(encodeTtlv(message)), FACTS_EXAMPLES.E2);
    const response = parseResponseMessage(decodeTtlv(fromHex(FACTS_EXAMPLES.E2!)));
    assert.deepEqual(response.protocolVersion, V11);
    assert.equal(response.batchItems[0]!.resultStatus, ResultStatus.Success);
    assert.equal(readUniqueIdentifier(response.batchItems[0]!.payload!), 'fb4b5b9c-6188-4c63-8142-fe9c328129fc');
  });

  it('reads a request back, header options included', () => {
    const request = parseRequestMessage(buildRequestMessage({ major: 1, minor: 4 }, [{ operation: Operation.Get, payload: payload.get('k'), uniqueBatchItemId: Uint8Array.of(7) }], {
      maximumResponseSize: 4096, batchOrderOption: true, batchErrorContinuationOption: 1, asynchronousIndicator: true, timeStamp: new Date(0), clientCorrelationValue: 'c',
    }));
    assert.equal(request.maximumResponseSize, 4096);
    assert.equal(request.batchOrderOption, true);
    assert.equal(request.batchErrorContinuationOption, 1);
    assert.equal(request.timeStamp, 0n);
    assert.deepEqual(request.batchItems[0]!.uniqueBatchItemId, Uint8Array.of(7));
  });

  it('a malformed message is KMIP_MESSAGE_INVALID, naming what is wrong', () => {
    const invalid = (fn: () => unknown, message: RegExp) => assert.throws(fn, (e: unknown) => (e as { code?: string }).code === 'KMIP_MESSAGE_INVALID' && message.test((e as Error).message));
    invalid(() => parseResponseMessage(structure(Tag.RequestMessage, [])), /expected a Response Message/);
    invalid(() => parseResponseMessage(structure(Tag.ResponseMessage, [])), /lacks its required ResponseHeader/);
    const response = decodeTtlv(fromHex(FACTS_EXAMPLES.E2!));
    const twoCounted = structure(Tag.ResponseMessage, [
      structure(Tag.ResponseHeader, (response.value as ReturnType<typeof structure>[])[0]!.value.map((i) => (i.tag === Tag.BatchCount ? integer(Tag.BatchCount, 2) : i))),
      (response.value as ReturnType<typeof structure>[])[1]!,
    ]);
    invalid(() => parseResponseMessage(twoCounted), /Batch Count says 2, the message has 1/);
    invalid(() => parseRequestMessage(structure(Tag.RequestMessage, [structure(Tag.RequestHeader, [integer(Tag.BatchCount, 0)])])), /lacks its required ProtocolVersion/);
  });
});
