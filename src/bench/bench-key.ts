/** The key every benchmark creates on its key server: AES-256 for Encrypt and Decrypt, named, optionally with Usage Limits. */
import { nameValue, type Attribute } from '../kmip/attributes.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, Tag, UsageLimitsUnit } from '../kmip/tables.generated.ts';
import { enumeration, integer, longInteger, structure } from '../ttlv/build.ts';

export function benchKeyAttributes(name: string, usageLimits?: bigint): Attribute[] {
  return [
    { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, CryptographicAlgorithm.AES) },
    { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
    { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt) },
    { name: 'Name', value: nameValue(name) },
    // KMIP 1.2 §3.21: the server sets Usage Limits Count to Total; both are required fields.
    ...(usageLimits === undefined ? [] : [{ name: 'Usage Limits', value: structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, usageLimits), longInteger(Tag.UsageLimitsCount, usageLimits), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Object)]) }]),
  ];
}
