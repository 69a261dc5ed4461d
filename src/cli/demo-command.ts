/**
 * `kmip-edge demo` — everything on one machine, on embedded defaults: the development KMIP server
 * (with its own PKI in a temporary folder) and the kmip-edge client talking to it over mutual
 * TLS — the upstream half of the gateway. It grows into the full gateway demo (agent, devices)
 * as those parts land. Key material is never printed: keys are shown by SHA-256 fingerprint.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nameValue, type Attribute } from '../kmip/attributes.ts';
import { formatVersion } from '../kmip/message.ts';
import { keyBlockOf, keyMaterialOf } from '../kmip/payloads.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Tag, UsageLimitsUnit } from '../kmip/tables.generated.ts';
import { ensureDevPki } from '../devserver/pki.ts';
import { DevKmipServer } from '../devserver/server.ts';
import { TlsPool } from '../net/tls-pool.ts';
import { CountingTransport } from '../net/counting-transport.ts';
import { byteString, enumeration, integer, longInteger, structure } from '../ttlv/build.ts';
import { KmipClient } from '../upstream/client.ts';
import { keyWrappingSpecification, verifyMacKeyBlock, wrappedAttribute } from '../upstream/key-wrapping.ts';

const fingerprint = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

function key(name: string, algorithm: number, usage: number, extra: Attribute[] = []): Attribute[] {
  return [
    { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, algorithm) },
    { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
    { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, usage) },
    { name: 'Name', value: nameValue(name) },
    ...extra,
  ];
}

export async function runDemo(_args: string[], out: (text: string) => void): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-demo-'));
  const step = (text: string): void => out(`  ${text}\n`);
  out('kmip-edge demo — development KMIP server and kmip-edge client on this machine, mutual TLS\n');
  const pki = ensureDevPki(dir);
  const server = new DevKmipServer(pki, { leaseSeconds: 600 });
  const port = await server.listen(0);
  step(`development server on 127.0.0.1:${port}; certificates made in ${dir}`);
  const transport = new CountingTransport(new TlsPool({ host: '127.0.0.1', port, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }, { maxConnections: 2 }));
  const client = new KmipClient({ transport });
  try {
    const versions = await client.discoverVersions();
    step(`negotiated KMIP ${formatVersion(versions[0]!)} (server offers ${versions.map(formatVersion).join(', ')})`);

    const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 1000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]);
    const tapeKey = await client.create(ObjectType.SymmetricKey, key('tape-drive-7', CryptographicAlgorithm.AES, CryptographicUsageMask.Encrypt | CryptographicUsageMask.Decrypt, [{ name: 'Usage Limits', value: limits }]));
    await client.activate(tapeKey);
    const material = keyMaterialOf(keyBlockOf((await client.get(tapeKey)).object));
    step(`created and activated AES-256 key ${tapeKey} (fingerprint ${fingerprint(material)}), usage limit 1000 bytes`);

    const grants: string[] = [];
    for (;;) {
      try {
        await client.getUsageAllocation(tapeKey, 300n);
        grants.push('300');
      } catch (error) {
        grants.push(`refused (${(error as { resultReason?: string }).resultReason})`);
        break;
      }
    }
    step(`Get Usage Allocation of 300 bytes, repeatedly: ${grants.join(', ')}`);
    const lease = await client.obtainLease(tapeKey);
    step(`Obtain Lease: ${lease.leaseTime} s`);

    const macKey = await client.create(ObjectType.SymmetricKey, key('mac-key', CryptographicAlgorithm.HMAC_SHA256, CryptographicUsageMask.MACGenerate | CryptographicUsageMask.MACVerify));
    const nonce = randomBytes(16);
    await client.addAttribute(tapeKey, { name: 'x-Nonce', value: byteString(Tag.AttributeValue, nonce) });
    const signed = await client.get(tapeKey, { keyWrappingSpecification: keyWrappingSpecification({ method: 'mac', keyUid: macKey, attributeNames: ['x-Nonce'] }) });
    const keyValue = verifyMacKeyBlock(keyBlockOf(signed.object), keyMaterialOf(keyBlockOf((await client.get(macKey)).object)));
    const echoed = wrappedAttribute(keyValue, 'x-Nonce')?.value as Uint8Array | undefined;
    const nonceOk = echoed !== undefined && Buffer.from(echoed).equals(nonce);
    step(`Get with MAC/sign wrapping + x-Nonce: HMAC-SHA256 verified, nonce ${nonceOk ? 'matches' : 'DOES NOT MATCH'}`);

    const uids = await Promise.all(Array.from({ length: 50 }, (_, i) => client.create(ObjectType.SymmetricKey, key(`device-key-${i}`, CryptographicAlgorithm.AES, CryptographicUsageMask.Encrypt))));
    const before = transport.roundTrips;
    const fetched = await Promise.all(uids.map((uid) => client.get(uid)));
    const ok = fetched.every((f, i) => f.uniqueIdentifier === uids[i]);
    step(`50 concurrent Gets: ${ok ? 'each caller got its own key' : 'MISMATCH'}, in ${transport.roundTrips - before} message(s) thanks to coalescing`);
    out(nonceOk && ok ? 'demo complete\n' : 'demo found a problem\n');
    return nonceOk && ok ? 0 : 1;
  } finally {
    await client.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
