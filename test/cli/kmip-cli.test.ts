/** `kmip-edge kmip …` from the shell against a real PyKMIP server (CLI.md, KMIP client). */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { startPyKmip, type PyKmipServer } from '../helpers/pykmip.ts';

let server: PyKmipServer;
let connection: string[];
before(async () => {
  server = await startPyKmip();
  const pem = (name: string, data: string | Buffer) => {
    const path = join(server.dir, `cli-${name}.pem`);
    writeFileSync(path, data);
    return path;
  };
  connection = ['--server', `127.0.0.1:${server.endpoint.port}`, '--ca', pem('ca', server.endpoint.ca), '--cert', pem('cert', server.endpoint.cert), '--key', pem('key', server.endpoint.key)];
});
after(() => server?.stop());

function kmip(...args: string[]): { status: number | null; json: Record<string, unknown>; stderr: string } {
  const run = runCli(['kmip', ...connection, ...args]);
  return { status: run.status, json: run.stdout ? (JSON.parse(run.stdout) as Record<string, unknown>) : {}, stderr: run.stderr };
}

describe('kmip-edge kmip against PyKMIP', () => {
  it('create, get, locate, get-attributes, activate, wrapped get, destroy', () => {
    const created = kmip('create', '--algorithm', 'AES', '--length', '256', '--usage', 'encrypt,decrypt', '--name', `cli-${process.pid}`);
    assert.equal(created.status, 0, created.stderr);
    const uid = created.json.uniqueIdentifier as string;
    const got = kmip('get', '--uid', uid);
    assert.equal(got.json.objectType, 'SymmetricKey');
    assert.match(got.json.keyMaterial as string, /^[0-9a-f]{64}$/);
    assert.deepEqual(kmip('locate', '--name', `cli-${process.pid}`).json, { uniqueIdentifiers: [uid] });
    const attributes = kmip('get-attributes', '--uid', uid, '--attribute', 'Cryptographic Algorithm', '--attribute', 'Cryptographic Usage Mask').json.attributes;
    assert.deepEqual(attributes, { 'Cryptographic Algorithm': 'AES', 'Cryptographic Usage Mask': 'Encrypt|Decrypt' });
    assert.deepEqual(kmip('activate', '--uid', uid).json, { uniqueIdentifier: uid });

    const kek = kmip('create', '--algorithm', 'AES', '--length', '256', '--usage', 'wrap-key,unwrap-key').json.uniqueIdentifier as string;
    kmip('activate', '--uid', kek);
    const wrapped = kmip('get', '--uid', uid, '--wrap-uid', kek, '--wrap-method', 'encrypt');
    assert.equal(wrapped.status, 0, wrapped.stderr);
    assert.equal(wrapped.json.keyMaterial, got.json.keyMaterial);

    assert.equal(kmip('revoke', '--uid', uid, '--reason', 'cessation-of-operation').status, 0);
    assert.deepEqual(kmip('destroy', '--uid', uid).json, { uniqueIdentifier: uid });
    const gone = kmip('get', '--uid', uid);
    assert.equal(gone.status, 1);
    assert.deepEqual(gone.json, { error: { resultStatus: 'OperationFailed', resultReason: 'ItemNotFound', resultMessage: `Could not locate object: ${uid}` } });
  });

  it('register secret data and get it back; query; discover-versions at a pinned version', () => {
    const uid = kmip('register', '--secret-hex', 'c0ffee00ba5e', '--name', `secret-cli-${process.pid}`).json.uniqueIdentifier as string;
    assert.equal(kmip('get', '--uid', uid).json.keyMaterial, 'c0ffee00ba5e');
    assert.ok((kmip('query').json.operations as string[]).includes('Locate'));
    assert.deepEqual(kmip('--version', '1.4', 'discover-versions').json, { protocolVersions: ['1.4', '1.3', '1.2', '1.1', '1.0'] });
  });

  it('bad usage exits 2; an unreachable or untrusted server exits 1 with the reason', () => {
    const missing = kmip('get');
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /^kmip-edge: this operation needs --uid/);
    assert.equal(kmip('frob').status, 2);
    assert.equal(kmip('--version', '3.0', 'query').status, 2);
    const wrongName = runCli(['kmip', ...connection, '--server-name', 'kmip.example.com', 'query']);
    assert.equal(wrongName.status, 1);
    assert.match(wrongName.stderr, /^kmip-edge: TLS with 127\.0\.0\.1:\d+ failed: the server certificate is not for this host name/);
  });
});
