/** The generated KMIP tables: up to date with their data, complete, and consistent with the corpus. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateKmipTables, GENERATED_PATH } from '../../scripts/generate-kmip-tables.ts';
import { normalizeKmipName } from '../../src/kmip/names.ts';
import * as tables from '../../src/kmip/tables.generated.ts';
import { attributeValueTag, enumerationFor, enumerationText, maskFor, maskText, tagFromName, tagName } from '../../src/kmip/vocabulary.ts';

const FACTS = fileURLToPath(new URL('../../../shared/kmip/FACTS.md', import.meta.url));

describe('generated KMIP tables', () => {
  it('regenerating from the committed data changes nothing', () => {
    assert.equal(generateKmipTables(), readFileSync(GENERATED_PATH, 'utf8'), 'src/kmip/tables.generated.ts is stale: run npm run generate');
  });

  it('the committed data table is what FACTS.md §2–3 says', () => {
    const committed = readFileSync(new URL('../../src/kmip/spec/kmip-facts.json', import.meta.url), 'utf8');
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/extract-spec-tables.ts', FACTS, '--stdout'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, committed, 'src/kmip/spec/kmip-facts.json differs from FACTS.md: run scripts/extract-spec-tables.ts');
  });

  it('has every tag 0x420001–0x420176 except the two reserved in 2.0', () => {
    const tags = tables.TAG_SPECS.map(([tag]) => tag);
    assert.equal(tags.length, 0x176 - 2);
    for (let tag = 0x420001; tag <= 0x420176; tag++) {
      if (tag === 0x42013e || tag === 0x42013f) assert.equal(tagName(tag), undefined);
      else if (tag !== 0x420137) assert.ok(tagName(tag), `tag 0x${tag.toString(16)} missing`);
    }
    assert.equal(tables.Tag.RequestMessage, 0x420078);
    assert.equal(tables.Tag.AsynchronousCorrelationValues, 0x420176);
    assert.equal(tagFromName('MACSignatureKeyInformation'), 0x42004e);
    assert.equal(tagFromName('X_509CertificateIdentifier'), 0x4200b5);
  });

  it('names enumerations as the KMIP XML test cases do (KMIP Profiles §5.4.1.1)', () => {
    const cases: [string, string][] = [
      ['3DES', 'DES3'], ['HMAC-SHA256', 'HMAC_SHA256'], ['Re-key', 'ReKey'], ['Pre-Active', 'PreActive'],
      ['X.509', 'X_509'], ['PKCS#1', 'PKCS_1'], ['SHA-256 with RSA Encryption', 'SHA_256WithRSAEncryption'],
      ['Polynomial Sharing GF(2^8)', 'PolynomialSharingGF2_8'], ['On-line storage', 'OnLineStorage'],
      ['MAC/sign', 'MACSign'], ['Template-Attribute', 'TemplateAttribute'], ['PKCS#12 Certificate Link', 'PKCS_12CertificateLink'],
    ];
    for (const [spec, xml] of cases) assert.equal(normalizeKmipName(spec), xml);
  });

  it('has the enumerations and values of FACTS.md §3', () => {
    assert.equal(tables.Operation.GetUsageAllocation, 0x11);
    assert.equal(tables.Operation.Ping, 0x3b);
    assert.equal(tables.ResultReason.GeneralFailure, 0x100);
    assert.equal(tables.ResultReason.PermissionDenied, 0xc);
    assert.equal(tables.CryptographicAlgorithm.HMAC_SHA256, 9);
    assert.equal(tables.WrappingMethod.MACSign, 2);
    assert.equal(tables.LinkType.ReplacementObjectLink, 0x106);
    assert.equal(tables.CryptographicUsageMask.Unrestricted, 0x200000);
    assert.equal(tables.UsageLimitsUnit.Object, 2);
    assert.equal(enumerationText(tables.Tag.State, 1), 'PreActive');
    assert.equal(enumerationText(tables.Tag.OpaqueDataType, 0x80000001), '0x80000001');
    // Mask Generator Hashing Algorithm takes Hashing Algorithm values.
    assert.equal(enumerationFor(tables.Tag.MaskGeneratorHashingAlgorithm)?.byName.get('SHA_256'), 6);
  });

  it('bit masks print low bit first and keep unknown bits in hex', () => {
    const usage = maskFor(tables.Tag.CryptographicUsageMask)!;
    assert.equal(maskText(usage, 12, ' '), 'Encrypt Decrypt');
    assert.equal(maskText(usage, 0x80000004 | 0, ' '), 'Encrypt 0x80000000');
    assert.equal(maskText(usage, 0, ' '), '0x00000000');
  });

  it('maps attribute names to the tag of their value', () => {
    assert.equal(attributeValueTag('Cryptographic Usage Mask'), tables.Tag.CryptographicUsageMask);
    assert.equal(attributeValueTag('State'), tables.Tag.State);
    assert.equal(attributeValueTag('Last Change Date'), tables.Tag.LastChangeDate);
    assert.equal(attributeValueTag('x-Nonce'), undefined);
  });
});
