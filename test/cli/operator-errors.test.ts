/**
 * Operator errors from the built CLI (issue #12 §3): each class is one line naming the problem
 * (and the file, flag or field), exit 2, no stack trace — checked with its exact message, then
 * the whole list is walked once more for the invariant. The upstream is a real `kmip-edge
 * dev-server` process and its PKI; ports in use are held by real listening sockets; the
 * unwritable data folder is tried as an unprivileged user (root writes anywhere).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from '../helpers/cli.ts';
import { TestCa } from '../helpers/certificates.ts';
import { startKeyServer, upstreamArgs } from '../helpers/processes.ts';

const BIN = join(ROOT, 'dist/kmip-edge.mjs');

interface Case {
  name: string;
  args: () => string[];
  lines: () => string[];
  /** Run as this user (for the unwritable folder when the tests run as root). */
  uid?: number | undefined;
}

function run(args: string[], uid?: number): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, ...(uid !== undefined && { uid, gid: uid }) });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

let kms: string;
let port: number;
let work: string;
let stopServer: () => void;
let held: Server;
let heldPort: number;
const cases: Case[] = [];

before(async () => {
  const started = await startKeyServer('operator-errors');
  ({ kms, port, work } = started);
  stopServer = () => started.server.kill('SIGTERM');
  held = createServer();
  await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', () => resolve()));
  heldPort = (held.address() as { port: number }).port;
});
after(() => {
  stopServer();
  held.close();
});

const data = (): string => join(work, `agent-${cases.length}-${Math.random().toString(36).slice(2)}`);
const runArgs = (...extra: string[]): string[] => ['run', '--data', data(), ...upstreamArgs(kms, port), ...extra];
const notPem = (): string => {
  const path = join(work, 'not-pem.txt');
  writeFileSync(path, 'this is not a certificate\n');
  return path;
};
const IN_USE = 'the address is already in use (another process listens there); stop it or choose another port';

function define(test: Case): void {
  cases.push(test);
  it(test.name, () => {
    const result = run(test.args(), test.uid);
    assert.equal(result.stderr, test.lines().map((line) => `kmip-edge: ${line}\n`).join(''));
    assert.equal(result.status, 2);
    assert.equal(result.stdout, '');
  });
}

describe('certificates and keys are checked before ready', () => {
  define({ name: 'a certificate that is not PEM', args: () => runArgs('--embedded-broker', '127.0.0.1:0', '--upstream-cert', notPem()), lines: () => [`${join(work, 'not-pem.txt')}: not a PEM certificate (no -----BEGIN CERTIFICATE----- block); expected the upstream certificate`] });
  define({
    name: 'certificate and key swapped',
    args: () => runArgs('--embedded-broker', '127.0.0.1:0', '--upstream-cert', join(kms, 'client.key'), '--upstream-key', join(kms, 'client.pem')),
    lines: () => [
      `${join(kms, 'client.key')}: holds a private key, not the upstream certificate (certificate and key swapped?)`,
      `${join(kms, 'client.pem')}: holds a certificate, not a private key (certificate and key swapped?)`,
    ],
  });
  define({ name: 'a key that does not belong to the certificate', args: () => runArgs('--embedded-broker', '127.0.0.1:0', '--upstream-key', join(kms, 'server.key')), lines: () => [`${join(kms, 'server.key')}: this private key does not belong to the certificate in ${join(kms, 'client.pem')}`] });
  let otherCa: TestCa | undefined;
  const other = (): TestCa => (otherCa ??= new TestCa('another CA'));
  define({
    name: 'the wrong CA',
    args: () => runArgs('--embedded-broker', '127.0.0.1:0', '--upstream-ca', join(other().dir, 'ca.pem')),
    lines: () => [`${join(kms, 'client.pem')}: the certificate for CN=kmip-edge-agent (issuer CN=kmip-edge development CA) is not signed by the CA in ${join(other().dir, 'ca.pem')}`],
  });
  const expired = (): { cert: string; key: string } => {
    const issued = other().issue('expired-agent', 'client', -1);
    const cert = join(work, 'expired.pem');
    const key = join(work, 'expired.key');
    writeFileSync(cert, issued.cert);
    writeFileSync(key, issued.key);
    return { cert, key };
  };
  define({
    name: 'an expired certificate',
    args: () => { const e = expired(); return runArgs('--embedded-broker', '127.0.0.1:0', '--upstream-ca', join(other().dir, 'ca.pem'), '--upstream-cert', e.cert, '--upstream-key', e.key); },
    lines: () => [`${join(work, 'expired.pem')}: the certificate for CN=expired-agent expired on ${new Date(new X509Certificate(readFileSync(join(work, 'expired.pem'))).validTo).toISOString()}`],
  });
  define({ name: 'a file that does not exist', args: () => runArgs('--embedded-broker', '127.0.0.1:0', '--upstream-ca', join(work, 'missing-ca.pem')), lines: () => [`${join(work, 'missing-ca.pem')}: cannot read it (no such file)`] });
  define({
    name: 'a bad certificate named in a configuration file',
    args: () => {
      const config = join(work, 'bad-cert.yaml');
      writeFileSync(config, `data: ${data()}\nupstream:\n  address: 127.0.0.1:${port}\n  ca: ${join(kms, 'ca.pem')}\n  cert: ${notPem()}\n  key: ${join(kms, 'client.key')}\nembeddedBroker: 127.0.0.1:0\n`);
      return ['run', '--config', config];
    },
    lines: () => [`${join(work, 'not-pem.txt')}: not a PEM certificate (no -----BEGIN CERTIFICATE----- block); expected the upstream certificate`],
  });
  define({ name: 'kmip: a --cert that is not PEM', args: () => ['kmip', '--server', `127.0.0.1:${port}`, '--ca', join(kms, 'ca.pem'), '--cert', notPem(), '--key', join(kms, 'client.key'), 'query'], lines: () => [`${join(work, 'not-pem.txt')}: not a PEM certificate (no -----BEGIN CERTIFICATE----- block); expected the client certificate`] });
});

describe('ports in use', () => {
  define({ name: 'run --embedded-broker', args: () => runArgs('--embedded-broker', `127.0.0.1:${heldPort}`), lines: () => [`--embedded-broker 127.0.0.1:${heldPort}: ${IN_USE}`] });
  define({
    name: 'run --push-listen',
    args: () => runArgs('--embedded-broker', '127.0.0.1:0', '--push-listen', `127.0.0.1:${heldPort}`, '--push-cert', join(kms, 'client.pem'), '--push-key', join(kms, 'client.key'), '--push-ca', join(kms, 'ca.pem')),
    lines: () => [`--push-listen 127.0.0.1:${heldPort}: ${IN_USE}`],
  });
  define({
    name: 'a port in use named in a configuration file',
    args: () => {
      const config = join(work, 'in-use.yaml');
      writeFileSync(config, `data: ${data()}\nupstream:\n  address: 127.0.0.1:${port}\n  ca: ${join(kms, 'ca.pem')}\n  cert: ${join(kms, 'client.pem')}\n  key: ${join(kms, 'client.key')}\nembeddedBroker: 127.0.0.1:${heldPort}\n`);
      return ['run', '--config', config];
    },
    lines: () => [`${join(work, 'in-use.yaml')}: embeddedBroker 127.0.0.1:${heldPort}: ${IN_USE}`],
  });
  define({ name: 'dev-server --port', args: () => ['dev-server', '--port', String(heldPort), '--dir', join(work, 'kms-in-use')], lines: () => [`--port 127.0.0.1:${heldPort}: ${IN_USE}`] });
  it('dev-server leaves no PKI behind when it cannot start', () => {
    assert.equal(existsSync(join(work, 'kms-in-use')), false);
    // openssl missing: the PKI cannot be made; nothing half-written stays.
    const dir = join(work, 'kms-no-openssl');
    const result = spawnSync(process.execPath, [BIN, 'dev-server', '--port', '0', '--dir', dir], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, PATH: '/nonexistent' } });
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /^kmip-edge: openssl req failed in .*: .*ENOENT.*\n$/);
    assert.equal(existsSync(dir), false);
  });
  define({ name: 'run --metrics', args: () => runArgs('--embedded-broker', '127.0.0.1:0', '--metrics', `127.0.0.1:${heldPort}`), lines: () => [`--metrics 127.0.0.1:${heldPort}: ${IN_USE}`] });
});

describe('flags and folders', () => {
  define({ name: '--mqtt without a scheme', args: () => runArgs('--mqtt', '127.0.0.1:1883'), lines: () => ['--mqtt: got "127.0.0.1:1883"; expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (e.g. mqtts://broker.local:8883)'] });
  define({ name: '--serial naming no device', args: () => runArgs('--serial', '/dev/kmip-edge-no-such-tty'), lines: () => ['--serial /dev/kmip-edge-no-such-tty: no such device (is it plugged in? stable names are in /dev/serial/by-id)'] });
  define({
    name: '--serial naming something that is not a serial line',
    args: () => runArgs('--serial', notPem()),
    lines: () => [`--serial ${join(work, 'not-pem.txt')}: not a serial device (not a character device)`],
  });
  define({ name: 'an unknown --log-level', args: () => runArgs('--embedded-broker', '127.0.0.1:0', '--log-level', 'verbose'), lines: () => ['--log-level: got "verbose"; expected one of fatal, error, warn, info, debug, trace, silent'] });
  define({
    name: '--data that is a file',
    args: () => { writeFileSync(join(work, 'a-file'), ''); return ['run', '--data', join(work, 'a-file'), ...upstreamArgs(kms, port), '--embedded-broker', '127.0.0.1:0']; },
    lines: () => [`--data ${join(work, 'a-file')}: is a file, not a folder; give a folder for the agent's data`],
  });
  define({
    name: '--data where a folder cannot be made (/proc)',
    args: () => ['run', '--data', '/proc/kmip-edge-agent', ...upstreamArgs(kms, port), '--embedded-broker', '127.0.0.1:0'],
    lines: () => ['--data /proc/kmip-edge-agent: cannot create /proc/kmip-edge-agent (this file system does not allow folders here)'],
  });
  define({
    name: 'device add --data where a folder cannot be made (/proc)',
    args: () => ['device', 'add', '--data', '/proc/kmip-edge-agent', '--id', 'd1'],
    lines: () => ['--data /proc/kmip-edge-agent: cannot create /proc/kmip-edge-agent (this file system does not allow folders here)'],
  });
  // Root writes anywhere: then the agent runs as "nobody", with certificate files it can read.
  const asUser = process.getuid?.() === 0 ? 65534 : undefined;
  define({
    name: '--data that is not writable',
    uid: asUser,
    args: () => {
      const pki = join(work, 'readable-pki');
      mkdirSync(pki, { recursive: true });
      for (const name of ['ca.pem', 'client.pem', 'client.key']) {
        copyFileSync(join(kms, name), join(pki, name));
        chmodSync(join(pki, name), 0o644);
      }
      chmodSync(work, 0o755);
      const locked = join(work, 'locked');
      mkdirSync(locked, { recursive: true });
      chmodSync(locked, 0o555);
      return ['run', '--data', locked, ...upstreamArgs(pki, port), '--embedded-broker', '127.0.0.1:0'];
    },
    lines: () => [`--data ${join(work, 'locked')}: cannot write in it (permission denied); it holds the agent's data`],
  });
  define({
    name: 'dev-server --dir that is a file, or where a folder cannot be made',
    args: () => { writeFileSync(join(work, 'a-file'), ''); return ['dev-server', '--port', '0', '--dir', join(work, 'a-file')]; },
    lines: () => [`--dir ${join(work, 'a-file')}: is a file, not a folder; give a folder for the development server's certificates and objects`],
  });
  define({ name: 'dev-server --dir in /proc', args: () => ['dev-server', '--port', '0', '--dir', '/proc/kmip-edge-kms'], lines: () => ['--dir /proc/kmip-edge-kms: cannot create /proc/kmip-edge-kms (this file system does not allow folders here)'] });
  it('device list|remove|update with a mistyped --data: one line, and no new store or master key left there', () => {
    const typo = join(work, 'no-agent-here');
    for (const args of [['list'], ['remove', '--id', 'd1'], ['update', '--id', 'd1', '--key-uid', 'k']]) {
      const result = run(['device', ...args, '--data', typo]);
      assert.equal(result.stderr, `kmip-edge: no agent store in ${typo}; give the agent's --data folder (device add makes a new one)\n`);
      assert.equal(result.status, 2);
      assert.equal(existsSync(typo), false);
    }
  });
  define({ name: 'an unknown flag', args: () => ['run', '--colour'], lines: () => ["Unknown option '--colour'; try kmip-edge run --help"] });
  define({ name: 'an unknown command', args: () => ['serve'], lines: () => ['unknown command "serve"; try kmip-edge --help'] });
  define({ name: 'demo with arguments', args: () => ['demo', 'now'], lines: () => ["Unexpected argument 'now'. This command does not take positional arguments; try kmip-edge demo --help"] });
  define({ name: 'device update with nothing to change', args: () => ['device', 'update', '--data', join(work, 'nowhere'), '--id', 'd1'], lines: () => ['device update needs what to change: --key-uid, --key-name, --key-group, --operation, --rate or --max-frame'] });
});

describe('the local KMIP endpoint and its clients (issue #16)', () => {
  let siteCa: TestCa | undefined;
  const site = (): TestCa => (siteCa ??= new TestCa('branch site CA'));
  const pem = (name: string, bytes: Buffer): string => {
    const path = join(work, name);
    writeFileSync(path, bytes);
    return path;
  };
  const library = (): { cert: string; key: string } => {
    const issued = site().issue('tape-lib-1', 'client');
    return { cert: pem('lib-1.pem', issued.cert), key: pem('lib-1.key', issued.key) };
  };
  const kmipArgs = (...extra: string[]): string[] => ['run', '--data', data(), ...upstreamArgs(kms, port), '--kmip-ca', pem('site-ca.pem', site().cert), ...extra];
  define({ name: 'client add without --cert', args: () => ['client', 'add', '--data', data(), '--id', 'lib-1'], lines: () => ["client add needs --cert FILE: the client's certificate (PEM); its key identifies the client"] });
  define({ name: 'client add --cert that is not PEM', args: () => ['client', 'add', '--data', data(), '--id', 'lib-1', '--cert', notPem()], lines: () => [`--cert ${join(work, 'not-pem.txt')}: not a PEM certificate (no -----BEGIN CERTIFICATE----- block); expected the KMIP client's certificate`] });
  define({ name: 'client add --cert of a CA', args: () => ['client', 'add', '--data', data(), '--id', 'lib-1', '--cert', join(kms, 'ca.pem')], lines: () => [`--cert ${join(kms, 'ca.pem')}: the certificate for CN=kmip-edge development CA is a CA certificate; give the client's own certificate (the CA goes to run --kmip-ca)`] });
  define({
    name: 'client add --cert that is not for TLS clients',
    args: () => ['client', 'add', '--data', data(), '--id', 'lib-1', '--cert', pem('server-only.pem', site().issue('a-server', 'server').cert)],
    lines: () => [`--cert ${join(work, 'server-only.pem')}: the certificate for CN=a-server is not for TLS clients (its extendedKeyUsage lacks clientAuth); issue one with extendedKeyUsage=clientAuth`],
  });
  define({ name: 'client add --operation that is not one', args: () => ['client', 'add', '--data', data(), '--id', 'lib-1', '--cert', library().cert, '--operation', 'Explode'], lines: () => ['--operation Explode: one of DiscoverVersions, Query, Locate, Get, GetAttributes, GetAttributeList, Check, GetUsageAllocation, ObtainLease, Create, Register, Activate, AddAttribute, ModifyAttribute, DeleteAttribute, Revoke, Destroy'] });
  define({ name: 'client add --pool without the length', args: () => ['client', 'add', '--data', data(), '--id', 'lib-1', '--cert', library().cert, '--pool', 'AES256=3'], lines: () => ['--pool "AES256=3": expected ALG-BITS[:GROUP]=N, e.g. AES-256:tape-lib-1=20'] });
  define({ name: 'client add --id with a space', args: () => ['client', 'add', '--data', data(), '--id', 'lib 1', '--cert', library().cert], lines: () => ['client id "lib 1" is not 1-64 of [A-Za-z0-9._-]'] });
  const registered = (): string => {
    const folder = data();
    const first = run(['client', 'add', '--data', folder, '--id', 'lib-1', '--cert', library().cert]);
    assert.equal(first.status, 0, first.stderr);
    return folder;
  };
  define({ name: 'client add of an id already registered', args: () => ['client', 'add', '--data', registered(), '--id', 'lib-1', '--cert', pem('lib-2.pem', site().issue('tape-lib-2', 'client').cert)], lines: () => ['client lib-1 is already registered; change it with kmip-edge client update --id lib-1'] });
  define({
    name: 'client add of a certificate another client has',
    args: () => ['client', 'add', '--data', registered(), '--id', 'lib-2', '--cert', join(work, 'lib-1.pem')],
    lines: () => [`this certificate's key (SPKI sha256 ${createHash('sha256').update(new X509Certificate(readFileSync(join(work, 'lib-1.pem'))).publicKey.export({ type: 'spki', format: 'der' })).digest('hex')}) is already client lib-1's; one key, one client`],
  });
  define({ name: 'client update with nothing to change', args: () => ['client', 'update', '--data', join(work, 'nowhere'), '--id', 'lib-1'], lines: () => ['client update needs what to change: --cert, --key-id, --key-name, --key-group, --operation or --pool'] });
  define({ name: 'client list with a mistyped --data', args: () => ['client', 'list', '--data', join(work, 'no-agent-here')], lines: () => [`no agent store in ${join(work, 'no-agent-here')}; give the agent's --data folder (client add makes a new one)`] });
  define({
    name: 'run --kmip-key that does not belong to --kmip-cert',
    args: () => kmipArgs('--kmip-listen', '127.0.0.1:0', '--kmip-cert', pem('endpoint.pem', site().issue('endpoint', 'server').cert), '--kmip-key', join(kms, 'client.key')),
    lines: () => [`${join(kms, 'client.key')}: this private key does not belong to the certificate in ${join(work, 'endpoint.pem')}`],
  });
  define({
    name: 'run --kmip-ca that is no CA',
    args: () => ['run', '--data', data(), ...upstreamArgs(kms, port), '--kmip-listen', '127.0.0.1:0', '--kmip-ca', join(kms, 'client.pem'), '--kmip-cert', join(kms, 'server.pem'), '--kmip-key', join(kms, 'server.key')],
    lines: () => [`${join(kms, 'client.pem')}: no CA certificate in it (the KMIP client CA must have basicConstraints CA:TRUE)`],
  });
  define({
    name: 'run --kmip-listen on a port in use',
    args: () => ['run', '--data', data(), ...upstreamArgs(kms, port), '--kmip-listen', `127.0.0.1:${heldPort}`, '--kmip-ca', join(kms, 'ca.pem'), '--kmip-cert', join(kms, 'server.pem'), '--kmip-key', join(kms, 'server.key')],
    lines: () => [`--kmip-listen 127.0.0.1:${heldPort}: ${IN_USE}`],
  });
  define({ name: 'run --kmip-listen without its certificate', args: () => ['run', '--data', data(), ...upstreamArgs(kms, port), '--kmip-listen', '127.0.0.1:0', '--kmip-ca', join(kms, 'ca.pem')], lines: () => ["--kmip-cert: missing; expected the path of the PEM file of the KMIP endpoint's certificate", "--kmip-key: missing; expected the path of the PEM file of the KMIP endpoint certificate's private key"] });
});

it('the whole list: every operator error above is exit 2, lines of "kmip-edge: …", no stack trace', () => {
  assert.ok(cases.length >= 20, `${cases.length} cases`);
  for (const test of cases) {
    const result = run(test.args(), test.uid);
    assert.equal(result.status, 2, `${test.name}: ${result.stderr}`);
    assert.doesNotMatch(result.stderr, /\n\s+at |Error:|node:internal/, `${test.name}: no stack trace`);
    assert.ok(result.stderr.length > 0 && result.stderr.split('\n').slice(0, -1).every((line) => line.startsWith('kmip-edge: ')), `${test.name}: ${result.stderr}`);
  }
});
