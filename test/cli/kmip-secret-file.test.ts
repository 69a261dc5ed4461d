/**
 * `kmip-edge kmip register --secret-file F` (issue #13 finding 8): the secret comes from a file or
 * standard input, not the command line where ps shows it to every user. Against the development
 * server as a real process; the registered bytes are read back with get.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { startKeyServer } from '../helpers/processes.ts';

it('register --secret-file F and --secret-file - register the secret; get returns it', async () => {
  const { work, kms, port, server } = await startKeyServer('secret-file');
  try {
    const tls = ['--server', `127.0.0.1:${port}`, '--ca', join(kms, 'ca.pem'), '--cert', join(kms, 'client.pem'), '--key', join(kms, 'client.key')];
    const secretFile = join(work, 'secret.hex');
    writeFileSync(secretFile, '00112233 44556677\n8899aabbccddeeff\n', { mode: 0o600 });
    const fromFile = runCli(['kmip', ...tls, 'register', '--secret-file', secretFile, '--name', 'from-file']);
    assert.equal(fromFile.status, 0, fromFile.stderr);
    const fromStdin = runCli(['kmip', ...tls, 'register', '--secret-file', '-', '--name', 'from-stdin'], 'CAFEBABE\n');
    assert.equal(fromStdin.status, 0, fromStdin.stderr);
    const material = (result: { stdout: string }): string => {
      const got = runCli(['kmip', ...tls, 'get', '--uid', (JSON.parse(result.stdout) as { uniqueIdentifier: string }).uniqueIdentifier]);
      return (JSON.parse(got.stdout) as { keyMaterial: string }).keyMaterial;
    };
    assert.equal(material(fromFile), '00112233445566778899aabbccddeeff');
    assert.equal(material(fromStdin), 'cafebabe');

    const both = runCli(['kmip', ...tls, 'register', '--secret-file', secretFile, '--secret-hex', '00']);
    assert.equal(both.status, 2);
    assert.equal(both.stderr, 'kmip-edge: register needs one of --secret-file F (- for standard input) or --secret-hex HEX\n');
    const empty = join(work, 'empty.hex');
    writeFileSync(empty, '\n');
    const none = runCli(['kmip', ...tls, 'register', '--secret-file', empty]);
    assert.equal(none.status, 2);
    assert.equal(none.stderr, `kmip-edge: --secret-file ${empty}: empty; expected the secret as hex text\n`);
  } finally {
    server.kill('SIGTERM');
  }
});
