/**
 * `kmip-edge config check FILE` and `run --config FILE` from the built CLI: the shipped examples
 * in deploy/ validate; each class of configuration error is one line with the field path, the
 * value given and what is allowed (exact messages), exit 2; flags override the file; relative
 * paths are resolved against the file's folder; the file size limit at the limit and one over.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MAX_CONFIG_BYTES } from '../../src/config/loader.ts';
import { ROOT, runCli } from '../helpers/cli.ts';

const work = mkdtempSync(join(tmpdir(), 'kmip-edge-config-'));
function file(name: string, text: string): string {
  const path = join(work, name);
  writeFileSync(path, text);
  return path;
}

const VALID = `data: ./agent
upstream:
  address: kms.example.com:5696
  ca: pki/ca.pem
  cert: /etc/kmip-edge/agent.pem
  key: /etc/kmip-edge/agent.key
embeddedBroker: 127.0.0.1:1883
`;

/** Runs `config check` and returns its stderr lines (each must be one message, never a stack). */
function errors(args: string[]): string[] {
  const run = runCli(['config', 'check', ...args]);
  assert.equal(run.status, 2, run.stdout + run.stderr);
  assert.equal(run.stdout, '');
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  return run.stderr.trimEnd().split('\n');
}

describe('deploy/ examples', () => {
  const examples = readdirSync(join(ROOT, 'deploy')).filter((name) => name.endsWith('.yaml'));
  it('there are the four documented examples', () => {
    assert.deepEqual(examples.sort(), ['gateway-embedded-broker.yaml', 'mosquitto-tls.yaml', 'serial-tape-drive.yaml', 'tape-library.yaml']);
  });
  for (const name of examples) {
    it(`${name} passes config check`, () => {
      const run = runCli(['config', 'check', join(ROOT, 'deploy', name)]);
      assert.equal(run.status, 0, run.stderr);
      const config = JSON.parse(run.stdout) as { data: string; upstream: { address: string } };
      assert.equal(config.data, '/var/lib/kmip-edge');
      assert.match(config.upstream.address, /:5696$/);
    });
  }
  it('the Mosquitto example uses TLS, a user name and a password file, and no inline secret', () => {
    const config = JSON.parse(runCli(['config', 'check', join(ROOT, 'deploy/mosquitto-tls.yaml')]).stdout) as { mqtt: Record<string, string> };
    assert.match(config.mqtt.url!, /^mqtts:\/\//);
    assert.equal(config.mqtt.username, 'kmip-edge-agent');
    assert.equal(config.mqtt.passwordFile, '/etc/kmip-edge/mqtt.password');
  });
});

describe('config check: the effective configuration', () => {
  it('fills defaults, resolves relative paths against the file, and flags override the file', () => {
    const path = file('valid.yaml', VALID);
    const run = runCli(['config', 'check', path, '--log-level', 'debug', '--upstream', '10.1.2.3:5696', '--nonce-mac-for', 'k1=m1']);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), {
      data: join(work, 'agent'),
      logLevel: 'debug',
      upstream: { address: '10.1.2.3:5696', ca: join(work, 'pki/ca.pem'), cert: '/etc/kmip-edge/agent.pem', key: '/etc/kmip-edge/agent.key' },
      embeddedBroker: '127.0.0.1:1883',
      serial: [],
      nonceMac: { perKey: { k1: 'm1' } },
    });
  });
});

describe('configuration errors, one line each: field, value given, what is allowed (exit 2)', () => {
  it('a missing field', () => {
    const path = file('missing.yaml', VALID.replace('  key: /etc/kmip-edge/agent.key\n', ''));
    assert.deepEqual(errors([path]), [`kmip-edge: ${path}: upstream.key: missing; expected the path of the PEM file of the client certificate's private key`]);
  });
  it('a value of the wrong type', () => {
    const path = file('type.yaml', VALID.replace('kms.example.com:5696', '5696'));
    assert.deepEqual(errors([path]), [`kmip-edge: ${path}: upstream.address: got 5696 (a number); expected HOST:PORT with a port 1-65535, e.g. kms.example.com:5696`]);
  });
  it('an unknown field (a misspelling is not ignored)', () => {
    const path = file('unknown.yaml', `${VALID}pushListner:\n  listen: 0.0.0.0:5697\n`);
    assert.deepEqual(errors([path]), [`kmip-edge: ${path}: pushListner: unknown field (got a mapping); allowed fields: data, logLevel, upstream, mqtt, embeddedBroker, serial, pushListener, kmip, nonceMac, metrics`]);
  });
  it('a value outside the allowed set', () => {
    const path = file('level.yaml', `${VALID}logLevel: verbose\n`);
    assert.deepEqual(errors([path]), [`kmip-edge: ${path}: logLevel: got "verbose"; expected one of fatal, error, warn, info, debug, trace, silent`]);
  });
  it('an inline secret is refused without echoing it', () => {
    const path = file('secret.yaml', VALID.replace('embeddedBroker: 127.0.0.1:1883\n', 'mqtt:\n  url: mqtt://127.0.0.1:1883\n  username: agent\n  password: hunter2\n'));
    const lines = errors([path]);
    assert.deepEqual(lines, [`kmip-edge: ${path}: mqtt.password: secrets are not accepted inline (value not shown); put it in a file, owner-only, and give the file's path (e.g. mqtt.passwordFile)`]);
    assert.ok(!lines.join('').includes('hunter2'));
  });
  it('rules across fields name the field to change', () => {
    const path = file('both.yaml', `${VALID}mqtt:\n  url: mqtt://127.0.0.1:1883\n  ca: ca.pem\n`);
    assert.deepEqual(errors([path]), [
      `kmip-edge: ${path}: embeddedBroker: got "127.0.0.1:1883"; expected not both: mqtt.url names an external broker, embeddedBroker starts one`,
      `kmip-edge: ${path}: mqtt.ca: got "${join(work, 'ca.pem')}"; expected only with an mqtts:// URL`,
    ]);
  });
  it('several problems: one line each', () => {
    const path = file('many.yaml', 'data: 7\nupstream:\n  address: kms:99999\n  ca: []\nserial: /dev/ttyUSB0\n');
    assert.deepEqual(errors([path]), [
      `kmip-edge: ${path}: data: got 7 (a number); expected the path of the agent's data folder (created if missing)`,
      `kmip-edge: ${path}: upstream.address: got "kms:99999"; expected HOST:PORT with a port 1-65535, e.g. kms.example.com:5696`,
      `kmip-edge: ${path}: upstream.ca: got a list of 0; expected the path of the PEM file of the CA(s) that sign the KMIP server certificate`,
      `kmip-edge: ${path}: upstream.cert: missing; expected the path of the PEM file of the agent's client certificate`,
      `kmip-edge: ${path}: upstream.key: missing; expected the path of the PEM file of the client certificate's private key`,
      `kmip-edge: ${path}: serial: got "/dev/ttyUSB0"; expected a list of serial device paths`,
    ]);
  });
  it('a value given by a flag is reported under the flag', () => {
    const path = file('flagged.yaml', VALID);
    assert.deepEqual(errors([path, '--push-listen', 'everywhere', '--push-cert', 'c.pem']), [
      'kmip-edge: --push-listen: got "everywhere"; expected HOST:PORT to listen on (port 0-65535, 0 = any free port), e.g. 0.0.0.0:5697',
      `kmip-edge: ${path}: pushListener.key: missing; expected the path of the PEM file of the listener certificate's private key`,
      `kmip-edge: ${path}: pushListener.ca: missing; expected the path of the PEM file of the CA the upstream's certificate chains to`,
    ]);
  });
  it('an unreadable file', () => {
    const path = join(work, 'no-such.yaml');
    assert.deepEqual(errors([path]), [`kmip-edge: ${path}: cannot read the configuration file: ENOENT`]);
    assert.deepEqual(errors([work]), [`kmip-edge: ${work}: cannot read the configuration file: EISDIR`]);
  });
  it('YAML that does not parse: the line and column', () => {
    const path = file('syntax.yaml', 'data: /var/lib/kmip-edge\nupstream:\n  address: [kms:5696\n');
    const [line, ...rest] = errors([path]);
    assert.match(line!, new RegExp(`^kmip-edge: ${path}:\\d+:\\d+ not valid YAML: `));
    assert.ok(rest.every((other) => other.startsWith(`kmip-edge: ${path}:`)));
    const duplicate = file('duplicate.yaml', `${VALID}data: /elsewhere\n`);
    assert.deepEqual(errors([duplicate]), [`kmip-edge: ${duplicate}:8:1 not valid YAML: Map keys must be unique`]);
  });
  it('a key that is not a plain value: one line, no YAML library warning on stderr', () => {
    const path = file('collection-key.yaml', '? {a: 1}\n: x\n');
    assert.deepEqual(errors([path]), [`kmip-edge: ${path}:1:3 not valid YAML: a key must be a plain name, not a mapping or list`]);
  });
  it('not a mapping', () => {
    const path = file('list.yaml', '- data\n- upstream\n');
    assert.deepEqual(errors([path]), [`kmip-edge: ${path}: got a list of 2; expected a mapping of settings (data:, upstream:, mqtt:, …)`]);
  });
  it(`the size limit: ${MAX_CONFIG_BYTES} bytes accepted, one more refused before parsing`, () => {
    const pad = (total: number): string => VALID + '#'.repeat(total - Buffer.byteLength(VALID) - 1) + '\n';
    assert.equal(runCli(['config', 'check', file('at-limit.yaml', pad(MAX_CONFIG_BYTES))]).status, 0);
    const over = file('over-limit.yaml', pad(MAX_CONFIG_BYTES + 1));
    assert.deepEqual(errors([over]), [`kmip-edge: ${over}: cannot read the configuration file: it has ${MAX_CONFIG_BYTES + 1} bytes, more than the limit of ${MAX_CONFIG_BYTES}`]);
  });
  it('run --config reports the same lines before starting anything', () => {
    const path = file('run.yaml', VALID.replace('kms.example.com:5696', '5696'));
    const run = runCli(['run', '--config', path]);
    assert.equal(run.status, 2);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, `kmip-edge: ${path}: upstream.address: got 5696 (a number); expected HOST:PORT with a port 1-65535, e.g. kms.example.com:5696\n`);
  });
  it('config check usage errors', () => {
    assert.deepEqual(errors([]), ['kmip-edge: config check needs exactly one FILE']);
    const bad = runCli(['config', 'lint', 'x']);
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr, 'kmip-edge: config needs check FILE\n');
  });
});
