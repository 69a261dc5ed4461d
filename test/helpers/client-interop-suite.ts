/**
 * The kmip-edge client's interop suite, run against any KMIP server over mutual TLS (PyKMIP and
 * the development server): the operations both support, at protocol versions 1.0, 1.2 and 1.4,
 * plus batches with the ID Placeholder, coalescing, and server errors surfacing as coded results.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TlsEndpoint } from '../../src/net/tls-options.ts';
import { nameValue, type Attribute } from '../../src/kmip/attributes.ts';
import { formatVersion, KmipResultError, type ProtocolVersion } from '../../src/kmip/message.ts';
import { keyBlockOf, keyMaterialOf, payload, readGet, readLocate } from '../../src/kmip/payloads.ts';
import {
  BatchErrorContinuationOption,
  CryptographicAlgorithm,
  CryptographicUsageMask,
  KeyFormatType,
  ObjectType,
  Operation,
  QueryFunction,
  ResultStatus,
  RevocationReasonCode,
  SecretDataType,
  State,
  Tag,
} from '../../src/kmip/tables.generated.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { byteString, enumeration, integer, structure, textString } from '../../src/ttlv/build.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { keyWrappingSpecification, unwrapKeyBlock } from '../../src/upstream/key-wrapping.ts';
import { CountingTransport } from '../../src/net/counting-transport.ts';

export interface RunningServer {
  endpoint: TlsEndpoint;
  stop(): void | Promise<void>;
}

export function aesKey(name: string, usage = CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt, extra: Attribute[] = []): Attribute[] {
  return [
    { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, CryptographicAlgorithm.AES) },
    { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
    { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, usage) },
    { name: 'Name', value: nameValue(name) },
    ...extra,
  ];
}

export function attributeValue(attributes: Attribute[], name: string): unknown {
  const value = attributes.find((a) => a.name === name)?.value;
  return value === undefined ? undefined : value.value;
}

export async function rejectsWith(promise: Promise<unknown>, reason: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => error instanceof KmipResultError && error.resultStatus === 'OperationFailed' && error.resultReason === reason);
}

export function clientInteropSuite(serverName: string, start: () => Promise<RunningServer>, vendor: RegExp): void {
let server: RunningServer;
before(async () => {
  server = await start();
});
after(() => server?.stop());

for (const version of [{ major: 1, minor: 0 }, { major: 1, minor: 2 }, { major: 1, minor: 4 }] satisfies ProtocolVersion[]) {
  describe(`${serverName} interop at KMIP ${formatVersion(version)}`, () => {
    let client: KmipClient;
    const run = `v${version.major}${version.minor}-${process.pid}`;
    before(() => {
      client = new KmipClient({ transport: new TlsPool(server.endpoint, { maxConnections: 2 }), version });
    });
    after(() => client.close());

    it('query and discover-versions', async () => {
      const query = await client.query([QueryFunction.QueryOperations, QueryFunction.QueryServerInformation]);
      assert.ok(query.operations.includes(Operation.Get) && query.operations.includes(Operation.Locate));
      assert.match(query.vendorIdentification ?? '', vendor);
      if (version.minor === 0) {
        // Discover Versions is a KMIP 1.1 operation; a 1.0 request for it is refused.
        await rejectsWith(client.discoverVersions(), 'OperationNotSupported');
      } else {
        assert.ok((await client.discoverVersions()).some((v) => v.major === 1 && v.minor === 4));
      }
    });

    it('create, get-attributes, get-attribute-list, locate by name and by object type', async () => {
      const uid = await client.create(ObjectType.SymmetricKey, aesKey(`key-${run}`, undefined, [{ name: 'Object Group', value: textString(Tag.AttributeValue, `group-${run}`) }]));
      const { attributes } = await client.getAttributes(uid, ['Cryptographic Algorithm', 'Cryptographic Length', 'State', 'Object Group']);
      assert.equal(attributeValue(attributes, 'Cryptographic Algorithm'), CryptographicAlgorithm.AES);
      assert.equal(attributeValue(attributes, 'Cryptographic Length'), 256);
      assert.equal(attributeValue(attributes, 'State'), State.PreActive);
      assert.equal(attributeValue(attributes, 'Object Group'), `group-${run}`);
      assert.ok((await client.getAttributeList(uid)).includes('Name'));
      assert.deepEqual((await client.locate({ attributes: [{ name: 'Name', value: nameValue(`key-${run}`) }] })).uniqueIdentifiers, [uid]);
      const symmetric = await client.locateAll({ attributes: [{ name: 'Object Type', value: enumeration(Tag.AttributeValue, ObjectType.SymmetricKey) }] });
      assert.ok(symmetric.includes(uid));
      assert.equal((await client.get(uid)).objectType, ObjectType.SymmetricKey);
      assert.equal(keyMaterialOf(keyBlockOf((await client.get(uid)).object)).length, 32);
    });

    it('register secret data; get returns exactly the registered bytes; locate by object type finds it', async () => {
      const secret = Uint8Array.from({ length: 24 }, (_, i) => (i * 37 + version.minor) & 0xff);
      const object = structure(Tag.SecretData, [
        enumeration(Tag.SecretDataType, SecretDataType.Password),
        structure(Tag.KeyBlock, [enumeration(Tag.KeyFormatType, KeyFormatType.Opaque), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, secret)])]),
      ]);
      const uid = await client.register(ObjectType.SecretData, [{ name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.Verify) }, { name: 'Name', value: nameValue(`secret-${run}`) }], object);
      const got = await client.get(uid);
      assert.equal(got.objectType, ObjectType.SecretData);
      assert.equal(toHex(keyMaterialOf(keyBlockOf(got.object))), toHex(secret));
      const found = await client.locateAll({ attributes: [{ name: 'Object Type', value: enumeration(Tag.AttributeValue, ObjectType.SecretData) }] });
      assert.ok(found.includes(uid));
    });

    it('modify and delete attributes', async () => {
      const uid = await client.create(ObjectType.SymmetricKey, aesKey(`mod-${run}`, undefined, [{ name: 'Object Group', value: textString(Tag.AttributeValue, 'to-delete') }]));
      await client.modifyAttribute(uid, { name: 'Name', value: nameValue(`renamed-${run}`) });
      assert.deepEqual((await client.locate({ attributes: [{ name: 'Name', value: nameValue(`renamed-${run}`) }] })).uniqueIdentifiers, [uid]);
      await client.deleteAttribute(uid, 'Object Group');
      assert.equal(attributeValue((await client.getAttributes(uid, ['Object Group'])).attributes, 'Object Group'), undefined);
    });

    it('activate, revoke, destroy; Get of a destroyed key is ItemNotFound', async () => {
      const uid = await client.create(ObjectType.SymmetricKey, aesKey(`life-${run}`));
      await client.activate(uid);
      assert.equal(attributeValue((await client.getAttributes(uid, ['State'])).attributes, 'State'), State.Active);
      await client.revoke(uid, RevocationReasonCode.CessationOfOperation);
      assert.equal(attributeValue((await client.getAttributes(uid, ['State'])).attributes, 'State'), State.Deactivated);
      await client.destroy(uid);
      await rejectsWith(client.get(uid), 'ItemNotFound');
    });

    it('Get with Encrypt wrapping (AES key wrap) unwraps locally to the plain Get material', async () => {
      const kek = await client.create(ObjectType.SymmetricKey, aesKey(`kek-${run}`, CryptographicUsageMask.WrapKey | CryptographicUsageMask.UnwrapKey));
      await client.activate(kek);
      const uid = await client.create(ObjectType.SymmetricKey, aesKey(`wrapped-${run}`));
      const plain = keyMaterialOf(keyBlockOf((await client.get(uid)).object));
      const kekBytes = keyMaterialOf(keyBlockOf((await client.get(kek)).object));
      const wrapped = await client.get(uid, { keyWrappingSpecification: keyWrappingSpecification({ method: 'encrypt', keyUid: kek, encoding: 'none' }) });
      const block = keyBlockOf(wrapped.object);
      assert.ok(block.value instanceof Array && block.value.some((c) => c.tag === Tag.KeyWrappingData), 'the key came back wrapped');
      assert.equal(toHex(unwrapKeyBlock(block, kekBytes)), toHex(plain));
      assert.throws(() => unwrapKeyBlock(block, new Uint8Array(32)), (e: unknown) => (e as { code?: string }).code === 'KMIP_WRAP_INVALID');
    });
  });
}

describe(`${serverName} interop: batches, coalescing, negotiation`, () => {
  it('negotiates the version with Discover Versions (1.4)', async () => {
    const transport = new TlsPool(server.endpoint);
    const client = new KmipClient({ transport });
    try {
      await client.query([QueryFunction.QueryOperations]);
      const channel = await transport.acquire(5000);
      assert.deepEqual(channel.negotiatedVersion, { major: 1, minor: 4 });
      transport.release(channel, false);
    } finally {
      await client.close();
    }
  });

  it('batch Locate + Get using the ID Placeholder (Batch Order Option true)', async () => {
    const client = new KmipClient({ transport: new TlsPool(server.endpoint) });
    try {
      const name = `placeholder-${process.pid}`;
      const uid = await client.create(ObjectType.SymmetricKey, aesKey(name));
      const [locate, get] = await client.batch(
        [
          { operation: Operation.Locate, payload: payload.locate({ attributes: [{ name: 'Name', value: nameValue(name) }] }) },
          { operation: Operation.Get, payload: payload.get() }, // no Unique Identifier: the ID Placeholder
        ],
        { batchOrderOption: true, batchErrorContinuationOption: BatchErrorContinuationOption.Stop },
      );
      assert.equal(locate?.resultStatus, ResultStatus.Success);
      assert.deepEqual(readLocate(locate!.payload!).uniqueIdentifiers, [uid]);
      assert.equal(get?.resultStatus, ResultStatus.Success);
      assert.equal(readGet(get!.payload!).uniqueIdentifier, uid);
    } finally {
      await client.close();
    }
  });

  it('coalesces concurrent Gets into few messages, each caller getting its own key; one failure stays its own', async () => {
    const setup = new KmipClient({ transport: new TlsPool(server.endpoint) });
    const uids: string[] = [];
    const expected = new Map<string, string>();
    try {
      for (let i = 0; i < 12; i++) uids.push(await setup.create(ObjectType.SymmetricKey, aesKey(`coalesce-${process.pid}-${i}`)));
      for (const uid of uids) expected.set(uid, toHex(keyMaterialOf(keyBlockOf((await setup.get(uid)).object))));
    } finally {
      await setup.close();
    }
    const counting = new CountingTransport(new TlsPool(server.endpoint, { maxConnections: 1 }));
    const client = new KmipClient({ transport: counting, version: { major: 1, minor: 2 }, coalesce: { windowMs: 5, maxBatch: 64 } });
    try {
      const results = await Promise.allSettled([...uids.map((uid) => client.get(uid)), client.get('no-such-object')]);
      for (const [i, uid] of uids.entries()) {
        const result = results[i]!;
        assert.equal(result.status, 'fulfilled');
        const got = (result as PromiseFulfilledResult<Awaited<ReturnType<KmipClient['get']>>>).value;
        assert.equal(got.uniqueIdentifier, uid);
        assert.equal(toHex(keyMaterialOf(keyBlockOf(got.object))), expected.get(uid));
      }
      const failed = results.at(-1)!;
      assert.equal(failed.status, 'rejected');
      assert.equal(((failed as PromiseRejectedResult).reason as KmipResultError).resultReason, 'ItemNotFound');
      assert.equal(counting.roundTrips, 1, `13 concurrent Gets took ${counting.roundTrips} messages`);
    } finally {
      await client.close();
    }
  });

  it('a server error surfaces as a coded result: Get of an unknown key is ItemNotFound', async () => {
    const client = new KmipClient({ transport: new TlsPool(server.endpoint), coalesce: false });
    try {
      await assert.rejects(client.get('does-not-exist'), (error: unknown) => {
        assert.ok(error instanceof KmipResultError);
        assert.equal(error.code, 'KMIP_OPERATION_FAILED');
        assert.deepEqual(error.toJSON(), { resultStatus: 'OperationFailed', resultReason: 'ItemNotFound', resultMessage: 'Could not locate object: does-not-exist' });
        return true;
      });
    } finally {
      await client.close();
    }
  });
});
}
