/**
 * The local KMIP client registry (issue #16) on LevelDB: one key, one client; ids, operations and
 * pool templates checked; a refused change changes nothing; records survive a reopen; the
 * fingerprint is the certificate key's (the same after a renewal with the same key).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { clientCertificate, ClientRegistry, DEFAULT_CLIENT_OPERATIONS, formatPoolTemplate, parsePoolTemplate } from '../../src/endpoint/client-registry.ts';
import { spkiSha256 } from '../../src/net/ttlv-connection.ts';
import { CryptographicAlgorithm } from '../../src/kmip/tables.generated.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { testPki } from './endpoint-fixture.ts';

const certificateOf = (pem: Buffer) => clientCertificate(new X509Certificate(pem));

describe('client registry', () => {
  let path: string;
  let store: LevelStore;
  let registry: ClientRegistry;
  before(async () => {
    path = join(mkdtempSync(join(tmpdir(), 'kmip-edge-clients-')), 'store');
    store = await LevelStore.open(path);
    registry = new ClientRegistry(store);
  });
  after(() => store.close());

  it('the identity is the SHA-256 of the SubjectPublicKeyInfo: what the listener computes from the handshake, and the same for a renewal with the same key', () => {
    const { ca, library } = testPki();
    const certificate = certificateOf(library.cert);
    assert.equal(certificate.spkiSha256, spkiSha256(new X509Certificate(library.cert).raw));
    // A renewal: the same key, a new certificate (another serial, other dates).
    const keyFile = join(ca.dir, 'renewal.key');
    writeFileSync(keyFile, library.key);
    execFileSync('openssl', ['req', '-new', '-key', keyFile, '-subj', '/CN=tape-lib-1', '-out', join(ca.dir, 'renewal.csr')], { stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-req', '-in', join(ca.dir, 'renewal.csr'), '-CA', join(ca.dir, 'ca.pem'), '-CAkey', join(ca.dir, 'ca.key'), '-CAcreateserial', '-days', '60', '-out', join(ca.dir, 'renewal.pem')], { stdio: 'ignore' });
    const renewed = readFileSync(join(ca.dir, 'renewal.pem'));
    assert.notEqual(new X509Certificate(renewed).serialNumber, new X509Certificate(library.cert).serialNumber);
    assert.equal(certificateOf(renewed).spkiSha256, certificate.spkiSha256);
    assert.notEqual(certificateOf(testPki().stranger.cert).spkiSha256, certificate.spkiSha256);
  });

  it('add: the default operations of a tape library, the lists given; found by id and by fingerprint', async () => {
    const certificate = certificateOf(testPki().library.cert);
    const added = await registry.add('lib-1', certificate, { keys: [{ name: 'cartridge-1' }, { objectGroup: 'tapes' }], pool: [parsePoolTemplate('AES-256:tapes=20')] });
    assert.deepEqual(added.operations, DEFAULT_CLIENT_OPERATIONS);
    assert.deepEqual(added.pool, [{ algorithm: CryptographicAlgorithm.AES, length: 256, objectGroup: 'tapes', size: 20 }]);
    assert.equal((await registry.bySpki(certificate.spkiSha256))?.id, 'lib-1');
    assert.equal((await registry.get('lib-1'))?.subject, 'CN=tape-lib-1');
    assert.equal(added.kind, 'client');
  });

  it('refused, changing nothing: an id in use, a key another client has, a bad id, an unknown operation, a bad pool', async () => {
    const library = certificateOf(testPki().library.cert);
    const stranger = certificateOf(testPki().stranger.cert);
    await assert.rejects(registry.add('lib-1', stranger), { code: 'CLIENT_EXISTS', message: /client lib-1 is already registered/ });
    await assert.rejects(registry.add('lib-2', library), { code: 'CLIENT_EXISTS', message: /already client lib-1's; one key, one client/ });
    await assert.rejects(registry.add('lib 2', stranger), { code: 'CLIENT_INVALID', message: /is not 1-64 of/ });
    await assert.rejects(registry.add('x'.repeat(65), stranger), { code: 'CLIENT_INVALID' });
    await assert.rejects(registry.add('lib-2', stranger, { operations: ['Get', 'Explode'] }), { code: 'CLIENT_INVALID', message: /--operation Explode: one of DiscoverVersions/ });
    await assert.rejects(registry.add('lib-2', stranger, { pool: [{ algorithm: 3, length: 256, size: 0 }] }), { code: 'CLIENT_INVALID', message: /size is a number of keys/ });
    await assert.rejects(registry.add('lib-2', stranger, { keys: [{ name: 'a', objectGroup: 'b' }] }), { code: 'CLIENT_INVALID', message: /key rule names one of/ });
    await assert.rejects(registry.update('lib-1', { operations: ['Teleport'] }), { code: 'CLIENT_INVALID' });
    await assert.rejects(registry.update('lib-1', { certificate: stranger, pool: [parsePoolTemplate('AES-256=1'), parsePoolTemplate('AES-256=2')] }), { code: 'CLIENT_INVALID', message: /the same template twice/ });
    assert.deepEqual((await registry.list()).map((client) => client.id), ['lib-1']);
    assert.equal(await registry.bySpki(stranger.spkiSha256), undefined, 'the failed re-key changed nothing');
    assert.deepEqual((await registry.get('lib-1'))?.operations, DEFAULT_CLIENT_OPERATIONS);
  });

  it('update replaces the lists given and keeps the rest; --cert re-keys: the old key no longer finds it', async () => {
    const library = certificateOf(testPki().library.cert);
    const stranger = certificateOf(testPki().stranger.cert);
    const updated = await registry.update('lib-1', { operations: ['Get', 'Locate', 'Get'] });
    assert.deepEqual(updated?.operations, ['Get', 'Locate']);
    assert.deepEqual(updated?.keys, [{ name: 'cartridge-1' }, { objectGroup: 'tapes' }]);
    const rekeyed = await registry.update('lib-1', { certificate: stranger });
    assert.equal(rekeyed?.spkiSha256, stranger.spkiSha256);
    assert.equal(await registry.bySpki(library.spkiSha256), undefined);
    assert.equal((await registry.bySpki(stranger.spkiSha256))?.id, 'lib-1');
    assert.equal(await registry.update('nobody', { operations: ['Get'] }), undefined);
    await registry.update('lib-1', { certificate: library });
  });

  it('records survive a reopen of the store; remove takes the client and its fingerprint away', async () => {
    const library = certificateOf(testPki().library.cert);
    await store.close();
    store = await LevelStore.open(path);
    registry = new ClientRegistry(store);
    const reopened = await registry.get('lib-1');
    assert.deepEqual(reopened?.operations, ['Get', 'Locate']);
    assert.equal((await registry.bySpki(library.spkiSha256))?.id, 'lib-1');
    assert.equal(await registry.remove('lib-1'), true);
    assert.equal(await registry.remove('lib-1'), false);
    assert.equal(await registry.bySpki(library.spkiSha256), undefined);
    await store.close();
    store = await LevelStore.open(path);
    registry = new ClientRegistry(store);
    assert.deepEqual(await registry.list(), []);
  });

  it('--pool ALG-BITS[:GROUP]=N parses and prints back', () => {
    for (const text of ['AES-256=20', 'AES-128:tape-lib-1=5', 'HMAC-SHA256-256:macs=1']) assert.equal(formatPoolTemplate(parsePoolTemplate(text)), text);
    assert.deepEqual(parsePoolTemplate('aes-256:g=3'), { algorithm: CryptographicAlgorithm.AES, length: 256, objectGroup: 'g', size: 3 });
    assert.throws(() => parsePoolTemplate('AES256=3'), /expected ALG-BITS\[:GROUP\]=N/);
    assert.throws(() => parsePoolTemplate('ROT13-256=3'), /unknown algorithm "ROT13"/);
    assert.throws(() => parsePoolTemplate('AES-256=100000'), /1-10000/);
  });
});
