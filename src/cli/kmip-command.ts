/**
 * `kmip-edge kmip …` (CLI.md, KMIP client): one operation against a KMIP server over mutual TLS
 * (or the HTTPS profile), printed as one JSON object whose names are the spec's in lowerCamelCase.
 * A KMIP failure prints {"error": {resultStatus, resultReason, resultMessage}} and exits 1.
 */
import { isoTime } from '../iso-time.ts';
import { parseArgs } from 'node:util';
import { KmipEdgeError } from '../errors.ts';
import { attributesJson, nameValue, type Attribute } from '../kmip/attributes.ts';
import { formatVersion, KmipResultError, parseVersion } from '../kmip/message.ts';
import { keyBlockOf, keyMaterialOf } from '../kmip/payloads.ts';
import {
  CryptographicAlgorithm,
  CryptographicUsageMask,
  KeyFormatType,
  ObjectType,
  QueryFunction,
  RevocationReasonCode,
  SecretDataType,
  Tag,
  UsageLimitsUnit,
} from '../kmip/tables.generated.ts';
import { parseBigInteger, parseDateTime, parseDecimal, parseHexBytes, parseLong } from '../kmip/text-values.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import { HttpsTransport } from '../net/https-transport.ts';
import { parseHostPort, readPem, type TlsEndpoint } from '../net/tls-options.ts';
import { TlsPool } from '../net/tls-pool.ts';
import { bigInteger, boolean, byteString, dateTime, enumeration, integer, interval, longInteger, structure, textString } from '../ttlv/build.ts';
import { fromHex, toHex } from '../ttlv/hex.ts';
import { ItemType, itemTypeFromName, type TtlvItem } from '../ttlv/item.ts';
import { KmipClient } from '../upstream/client.ts';
import { keyWrappingSpecification, unwrapKeyBlock, verifyMacKeyBlock } from '../upstream/key-wrapping.ts';
import { UsageError } from './errors.ts';
import { readInputLimited } from './input.ts';
import { ConfigError } from '../config/config-error.ts';
import { checkTlsFiles } from '../config/tls-files.ts';

export const KMIP_USAGE = `usage: kmip-edge kmip --server HOST:PORT --ca F --cert F --key F [--version 1.0..1.4] [--https /PATH] OP [ARGS]
  query | discover-versions
  create --algorithm AES|HMAC-SHA256 --length BITS [--usage encrypt,decrypt,…] [--name N] [--usage-limits N --usage-unit byte|object]
  register (--secret-file F | --secret-hex HEX) [--name N]   F: hex text, - = standard input (not visible in ps)
  get --uid U [--wrap-uid K --wrap-method encrypt|mac [--wrap-attribute NAME …]]
  locate [--name N] [--object-type T] [--max N]
  get-attributes --uid U [--attribute NAME …] | get-attribute-list --uid U
  add-attribute | modify-attribute --uid U --attribute NAME --type TextString|ByteString|Integer|… --value V
  delete-attribute --uid U --attribute NAME
  activate --uid U | revoke --uid U --reason REASON | destroy --uid U
  obtain-lease --uid U | get-usage-allocation --uid U --count N | check --uid U [--count N]`;

export const KMIP_OPTIONS = {
  server: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
  'server-name': { type: 'string' }, ciphers: { type: 'string' }, version: { type: 'string' }, https: { type: 'string' },
  timeout: { type: 'string' },
  uid: { type: 'string' }, algorithm: { type: 'string' }, length: { type: 'string' }, usage: { type: 'string' }, name: { type: 'string' },
  'usage-limits': { type: 'string' }, 'usage-unit': { type: 'string' }, 'secret-hex': { type: 'string' }, 'secret-file': { type: 'string' },
  'wrap-uid': { type: 'string' }, 'wrap-method': { type: 'string' }, 'wrap-attribute': { type: 'string', multiple: true },
  'object-type': { type: 'string' }, max: { type: 'string' }, attribute: { type: 'string', multiple: true },
  type: { type: 'string' }, value: { type: 'string' }, reason: { type: 'string' }, count: { type: 'string' },
} as const;

/** A secret registered from the command line: 32 KiB of bytes as hex (with room for line breaks). */
const MAX_SECRET_HEX_BYTES = 80 * 1024;

type Values = ReturnType<typeof parseArgs<{ options: typeof KMIP_OPTIONS; allowPositionals: true }>>['values'];

/** A table value by name, ignoring case and separators: "wrap-key", "WrapKey" and "wrap_key" alike. */
function lookup(table: Readonly<Record<string, number>>, text: string, what: string): number {
  const fold = (name: string): string => name.toLowerCase().replace(/[-_\s]/g, '');
  const key = Object.keys(table).find((name) => fold(name) === fold(text));
  if (key === undefined) throw new UsageError(`unknown ${what} ${JSON.stringify(text)}; one of: ${Object.keys(table).join(', ')}`);
  return table[key]!;
}

function required(values: Values, name: keyof Values): string {
  const value = values[name];
  if (typeof value !== 'string') throw new UsageError(`this operation needs --${name}`);
  return value;
}

function count(text: string, what: string): bigint {
  if (!/^\d{1,18}$/.test(text)) throw new UsageError(`${what} must be a whole number, not ${JSON.stringify(text)}`);
  return BigInt(text);
}

function endpoint(values: Values): TlsEndpoint {
  // Unreadable, non-PEM, swapped or mismatched files: one line each, exit 2 (not a TLS error later).
  const problems = checkTlsFiles({ role: 'client', caRole: 'KMIP server', ca: required(values, 'ca'), cert: required(values, 'cert'), key: required(values, 'key') });
  if (problems.length > 0) throw new ConfigError('CONFIG_TLS', problems);
  return {
    ...parseHostPort(required(values, 'server')),
    ca: readPem(required(values, 'ca'), 'CA certificate'),
    cert: readPem(required(values, 'cert'), 'client certificate'),
    key: readPem(required(values, 'key'), 'client key'),
    ...(values['server-name'] !== undefined && { serverName: values['server-name'] }),
    ...(values.ciphers !== undefined && { ciphers: values.ciphers }),
  };
}

/** An Attribute Value from --type and --value, by the type's KMIP XML name. */
function attributeValueItem(name: string, typeName: string, text: string): TtlvItem {
  const type = itemTypeFromName(typeName);
  const tag = Tag.AttributeValue;
  const what = `--value for ${name}`;
  switch (type) {
    case ItemType.TextString: return textString(tag, text);
    case ItemType.ByteString: return byteString(tag, parseHexBytes(text.toLowerCase(), what));
    case ItemType.Integer: return integer(tag, parseDecimal(text, -0x80000000, 0x7fffffff, what));
    case ItemType.LongInteger: return longInteger(tag, parseLong(text, what));
    case ItemType.BigInteger: return bigInteger(tag, parseBigInteger(text, what));
    case ItemType.Enumeration: return enumeration(tag, parseDecimal(text, 0, 0xffffffff, what));
    case ItemType.Boolean:
      if (text !== 'true' && text !== 'false') throw new UsageError(`${what} must be true or false`);
      return boolean(tag, text === 'true');
    case ItemType.DateTime: return dateTime(tag, parseDateTime(text, what));
    case ItemType.Interval: return interval(tag, parseDecimal(text, 0, 0xffffffff, what));
    default: throw new UsageError(`--type must be TextString, ByteString, Integer, LongInteger, BigInteger, Enumeration, Boolean, DateTime or Interval`);
  }
}

function createAttributes(values: Values): { objectType: number; attributes: Attribute[] } {
  const algorithm = lookup(CryptographicAlgorithm, required(values, 'algorithm'), 'algorithm');
  const usageNames = values.usage ?? (algorithm === CryptographicAlgorithm.AES ? 'encrypt,decrypt' : 'mac-generate,mac-verify');
  const usage = usageNames.split(',').reduce((mask, name) => mask | lookup(CryptographicUsageMask, name.trim(), 'usage'), 0);
  const attributes: Attribute[] = [
    { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, algorithm) },
    { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, Number(count(required(values, 'length'), '--length'))) },
    { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, usage) },
  ];
  if (values.name !== undefined) attributes.push({ name: 'Name', value: nameValue(values.name) });
  if (values['usage-limits'] !== undefined) {
    const total = count(values['usage-limits'], '--usage-limits');
    const unit = lookup(UsageLimitsUnit, values['usage-unit'] ?? 'object', 'usage unit');
    // KMIP 1.2 §3.21: the server sets Usage Limits Count to Total; both are required fields.
    attributes.push({ name: 'Usage Limits', value: structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, total), longInteger(Tag.UsageLimitsCount, total), enumeration(Tag.UsageLimitsUnit, unit)]) });
  }
  return { objectType: ObjectType.SymmetricKey, attributes };
}

async function getOperation(client: KmipClient, values: Values): Promise<Record<string, unknown>> {
  const uid = required(values, 'uid');
  const wrapUid = values['wrap-uid'];
  if (wrapUid === undefined) {
    const result = await client.get(uid);
    return { uniqueIdentifier: result.uniqueIdentifier, objectType: enumerationText(Tag.ObjectType, result.objectType), keyMaterial: toHex(keyMaterialOf(keyBlockOf(result.object))) };
  }
  const method = required(values, 'wrap-method');
  if (method !== 'encrypt' && method !== 'mac') throw new UsageError('--wrap-method must be encrypt or mac');
  // The wrapping key's own bytes are needed to unwrap or verify locally.
  const wrappingKey = keyMaterialOf(keyBlockOf((await client.get(wrapUid)).object));
  const attributeNames = values['wrap-attribute'] ?? [];
  const result = await client.get(uid, {
    keyWrappingSpecification: keyWrappingSpecification({ method, keyUid: wrapUid, attributeNames, ...(method === 'encrypt' && attributeNames.length === 0 && { encoding: 'none' as const }) }),
  });
  const block = keyBlockOf(result.object);
  const material = method === 'encrypt' ? unwrapKeyBlock(block, wrappingKey) : keyMaterialOf(structure(Tag.KeyBlock, [verifyMacKeyBlock(block, wrappingKey)]));
  return { uniqueIdentifier: result.uniqueIdentifier, objectType: enumerationText(Tag.ObjectType, result.objectType), keyMaterial: toHex(material), wrapMethod: method, verified: true };
}

/** A secret's hex: read from --secret-file (or standard input for -), or --secret-hex, which ps shows to every user. */
function registerSecret(values: Values): Uint8Array {
  if ((values['secret-file'] === undefined) === (values['secret-hex'] === undefined)) throw new UsageError('register needs one of --secret-file F (- for standard input) or --secret-hex HEX');
  if (values['secret-hex'] !== undefined) return fromHex(values['secret-hex']);
  const text = readInputLimited(values['secret-file']!, MAX_SECRET_HEX_BYTES).toString('latin1').replace(/\s+/g, '');
  if (text.length === 0) throw new UsageError(`--secret-file ${values['secret-file']}: empty; expected the secret as hex text`);
  return fromHex(text.toLowerCase());
}

async function runOperation(client: KmipClient, op: string, values: Values): Promise<Record<string, unknown>> {
  switch (op) {
    case 'query': {
      const result = await client.query([QueryFunction.QueryOperations, QueryFunction.QueryObjects, QueryFunction.QueryServerInformation]);
      return {
        operations: result.operations.map((o) => enumerationText(Tag.Operation, o)),
        objectTypes: result.objectTypes.map((o) => enumerationText(Tag.ObjectType, o)),
        ...(result.vendorIdentification !== undefined && { vendorIdentification: result.vendorIdentification }),
      };
    }
    case 'discover-versions':
      return { protocolVersions: (await client.discoverVersions()).map(formatVersion) };
    case 'create': {
      const { objectType, attributes } = createAttributes(values);
      return { uniqueIdentifier: await client.create(objectType, attributes), objectType: enumerationText(Tag.ObjectType, objectType) };
    }
    case 'register': {
      const secret = registerSecret(values);
      const object = structure(Tag.SecretData, [
        enumeration(Tag.SecretDataType, SecretDataType.Password),
        structure(Tag.KeyBlock, [enumeration(Tag.KeyFormatType, KeyFormatType.Opaque), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, secret)])]),
      ]);
      const attributes: Attribute[] = [{ name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.Verify) }];
      if (values.name !== undefined) attributes.push({ name: 'Name', value: nameValue(values.name) });
      return { uniqueIdentifier: await client.register(ObjectType.SecretData, attributes, object), objectType: 'SecretData' };
    }
    case 'get':
      return getOperation(client, values);
    case 'locate': {
      const attributes: Attribute[] = [];
      if (values['object-type'] !== undefined) attributes.push({ name: 'Object Type', value: enumeration(Tag.AttributeValue, lookup(ObjectType, values['object-type'], 'object type')) });
      if (values.name !== undefined) attributes.push({ name: 'Name', value: nameValue(values.name) });
      const uniqueIdentifiers = values.max !== undefined
        ? (await client.locate({ attributes, maximumItems: Number(count(values.max, '--max')) })).uniqueIdentifiers
        : await client.locateAll({ attributes });
      return { uniqueIdentifiers };
    }
    case 'get-attributes': {
      const result = await client.getAttributes(required(values, 'uid'), values.attribute ?? []);
      return { uniqueIdentifier: result.uniqueIdentifier, attributes: attributesJson(result.attributes) };
    }
    case 'get-attribute-list':
      return { uniqueIdentifier: required(values, 'uid'), attributeNames: await client.getAttributeList(required(values, 'uid')) };
    case 'add-attribute':
    case 'modify-attribute': {
      const name = (values.attribute ?? [])[0];
      if (name === undefined) throw new UsageError('this operation needs --attribute NAME');
      // A Name's value is a structure; given as text it is an uninterpreted text string (KMIP 1.2 §3.2).
      const value = name === 'Name' && required(values, 'type') === 'TextString' ? nameValue(required(values, 'value')) : attributeValueItem(name, required(values, 'type'), required(values, 'value'));
      const attribute = { name, value };
      const result = op === 'add-attribute' ? await client.addAttribute(required(values, 'uid'), attribute) : await client.modifyAttribute(required(values, 'uid'), attribute);
      return { uniqueIdentifier: required(values, 'uid'), attributes: attributesJson([result]) };
    }
    case 'delete-attribute': {
      const name = (values.attribute ?? [])[0];
      if (name === undefined) throw new UsageError('delete-attribute needs --attribute NAME');
      await client.deleteAttribute(required(values, 'uid'), name);
      return { uniqueIdentifier: required(values, 'uid'), deletedAttribute: name };
    }
    case 'activate':
      return { uniqueIdentifier: await client.activate(required(values, 'uid')) };
    case 'revoke':
      return { uniqueIdentifier: await client.revoke(required(values, 'uid'), lookup(RevocationReasonCode, required(values, 'reason'), 'revocation reason')) };
    case 'destroy':
      return { uniqueIdentifier: await client.destroy(required(values, 'uid')) };
    case 'obtain-lease': {
      const lease = await client.obtainLease(required(values, 'uid'));
      return { uniqueIdentifier: lease.uniqueIdentifier, leaseTime: lease.leaseTime, lastChangeDate: isoTime(Number(lease.lastChangeDate) * 1000) };
    }
    case 'get-usage-allocation':
      return { uniqueIdentifier: await client.getUsageAllocation(required(values, 'uid'), count(required(values, 'count'), '--count')), usageLimitsCount: Number(count(required(values, 'count'), '--count')) };
    case 'check': {
      const result = await client.check(required(values, 'uid'), values.count !== undefined ? { usageLimitsCount: count(values.count, '--count') } : {});
      return { uniqueIdentifier: result.uniqueIdentifier, ...(result.usageLimitsCount !== undefined && { usageLimitsCount: Number(result.usageLimitsCount) }) };
    }
    default:
      throw new UsageError(`unknown KMIP operation ${JSON.stringify(op)}\n${KMIP_USAGE}`);
  }
}

export async function runKmipCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: KMIP_OPTIONS, allowPositionals: true, strict: true });
  const [op, ...extra] = positionals;
  if (op === undefined) throw new UsageError(`kmip needs an operation\n${KMIP_USAGE}`);
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const timeoutMs = values.timeout === undefined ? 10_000 : Number(count(values.timeout, '--timeout')) * 1000;
  const tls = endpoint(values);
  const transport = values.https !== undefined ? new HttpsTransport(tls, values.https) : new TlsPool(tls, { maxConnections: 2 });
  const client = new KmipClient({ transport, timeoutMs, ...(values.version !== undefined && { version: parseVersion(values.version) }) });
  try {
    out(JSON.stringify(await runOperation(client, op, values)) + '\n');
    return 0;
  } catch (error) {
    if (error instanceof KmipResultError) {
      out(JSON.stringify({ error: error.toJSON() }) + '\n');
      return 1;
    }
    if (error instanceof KmipEdgeError && !(error instanceof UsageError) && /^(NET_|KMIP_)/.test(error.code)) {
      process.stderr.write(`kmip-edge: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    await client.close();
  }
}
