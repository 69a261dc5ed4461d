/**
 * The startup checks of certificate and key files (src/config/tls-files.ts) on a real PKI made
 * with openssl: a chain through an intermediate in the certificate file, a leaf without its
 * intermediate, dates on either side, an encrypted key, a CA file without a CA.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { checkPinnedCertificate, checkTlsFiles } from '../../src/config/tls-files.ts';
import { TestCa } from '../helpers/certificates.ts';

let root: TestCa;
let dir: string;
const openssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
const path = (name: string): string => join(dir, name);

before(() => {
  root = new TestCa('test root');
  dir = root.dir;
  // root → intermediate (CA:TRUE) → leaf
  writeFileSync(path('int.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=test intermediate', '-keyout', 'int.key', '-out', 'int.csr']);
  openssl(['x509', '-req', '-in', 'int.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '30', '-extfile', 'int.ext', '-out', 'int.pem']);
  writeFileSync(path('leaf.ext'), 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=leaf', '-keyout', 'leaf.key', '-out', 'leaf.csr']);
  openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'int.pem', '-CAkey', 'int.key', '-CAcreateserial', '-days', '30', '-extfile', 'leaf.ext', '-out', 'leaf.pem']);
  writeFileSync(path('leaf-chain.pem'), Buffer.concat([readFileSync(path('leaf.pem')), readFileSync(path('int.pem'))]));
  openssl(['pkey', '-in', 'leaf.key', '-aes256', '-passout', 'pass:secret', '-out', 'leaf-encrypted.key']);
});

describe('checkTlsFiles', () => {
  it('a leaf with its intermediate in the certificate file chains to the root', () => {
    assert.deepEqual(checkTlsFiles({ role: 'upstream', ca: path('ca.pem'), cert: path('leaf-chain.pem'), key: path('leaf.key') }), []);
  });
  it('a leaf without its intermediate does not', () => {
    assert.deepEqual(checkTlsFiles({ role: 'upstream', ca: path('ca.pem'), cert: path('leaf.pem'), key: path('leaf.key') }), [
      `${path('leaf.pem')}: the certificate for CN=leaf (issuer CN=test intermediate) is not signed by the CA in ${path('ca.pem')}`,
    ]);
  });
  it('dates: not yet valid, expired', () => {
    const leaf = new X509Certificate(readFileSync(path('leaf.pem')));
    const from = new Date(leaf.validFrom);
    const to = new Date(leaf.validTo);
    const files = { role: 'upstream', ca: path('ca.pem'), cert: path('leaf-chain.pem'), key: path('leaf.key') };
    const early = checkTlsFiles(files, new Date(from.getTime() - 86_400_000));
    assert.ok(early.includes(`${path('leaf-chain.pem')}: the certificate for CN=leaf is not valid before ${from.toISOString()} (check the clock)`), early.join('\n'));
    const late = checkTlsFiles(files, new Date(to.getTime() + 1000));
    assert.ok(late.includes(`${path('leaf-chain.pem')}: the certificate for CN=leaf expired on ${to.toISOString()}`), late.join('\n'));
  });
  it('an encrypted private key', () => {
    assert.deepEqual(checkTlsFiles({ role: 'upstream', ca: path('ca.pem'), cert: path('leaf-chain.pem'), key: path('leaf-encrypted.key') }), [
      `${path('leaf-encrypted.key')}: the private key is encrypted; give an unencrypted key file readable by the agent only`,
    ]);
  });
  it('a CA file holding a certificate that is no CA', () => {
    assert.deepEqual(checkTlsFiles({ role: 'MQTT broker', ca: path('leaf.pem') }), [`${path('leaf.pem')}: no CA certificate in it (the MQTT broker CA must have basicConstraints CA:TRUE)`]);
  });
  it('a pinned certificate must chain to the CA that verifies the peer', () => {
    assert.deepEqual(checkPinnedCertificate(path('int.pem'), path('ca.pem'), 'upstream'), []);
    const other = new TestCa('another root');
    assert.deepEqual(checkPinnedCertificate(path('int.pem'), join(other.dir, 'ca.pem'), 'upstream'), [
      `${path('int.pem')}: the pinned upstream certificate (CN=test intermediate) is not signed by the CA in ${join(other.dir, 'ca.pem')}, so it would never be accepted`,
    ]);
  });
});
