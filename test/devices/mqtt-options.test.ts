/**
 * Reaching the broker: URLs, the password file (at the limit and one over), TLS files checked at
 * start, the agent's stable client id, and the reconnect backoff (capped, jittered).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { agentClientId, MAX_MQTT_PASSWORD_BYTES, parseMqttUrl, readMqttPassword, resolveMqttSettings } from '../../src/devices/mqtt-options.ts';
import { reconnectDelay, RECONNECT_BASE_MS, RECONNECT_MAX_MS } from '../../src/devices/mqtt-transport.ts';
import { TestCa } from '../helpers/certificates.ts';

const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-mqtt-options-'));
const file = (name: string, content: string | Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
};

it('MQTT URLs: mqtt:// and mqtts:// with default ports, IPv6; no scheme, credentials or paths', () => {
  assert.deepEqual(parseMqttUrl('mqtt://127.0.0.1'), { tls: false, host: '127.0.0.1', port: 1883 });
  assert.deepEqual(parseMqttUrl('mqtts://broker.example:8884'), { tls: true, host: 'broker.example', port: 8884 });
  assert.deepEqual(parseMqttUrl('mqtts://[::1]'), { tls: true, host: '::1', port: 8883 });
  assert.throws(() => parseMqttUrl('127.0.0.1:1883'), { code: 'CLI_USAGE', message: '--mqtt takes mqtt://HOST:PORT or mqtts://HOST:PORT, not "127.0.0.1:1883"' });
  assert.throws(() => parseMqttUrl('ws://host:80'), { code: 'CLI_USAGE' });
  assert.throws(() => parseMqttUrl('mqtt://user:pw@host'), { code: 'CLI_USAGE', message: /no credentials in the URL/ });
  assert.throws(() => parseMqttUrl('mqtt://host:70000'), { code: 'CLI_USAGE' });
  assert.throws(() => parseMqttUrl('mqtt://host/topic'), { code: 'CLI_USAGE' });
});

it('the password file: its first line; a trailing newline is not part of it; empty, several lines or over 65,535 bytes refused', () => {
  assert.equal(readMqttPassword(file('a', 'secret\n')).toString(), 'secret');
  assert.equal(readMqttPassword(file('b', 'secret')).toString(), 'secret');
  assert.equal(readMqttPassword(file('c', 'sec ret\r\n')).toString(), 'sec ret');
  assert.equal(readMqttPassword(file('at-limit', 'x'.repeat(MAX_MQTT_PASSWORD_BYTES) + '\n')).length, MAX_MQTT_PASSWORD_BYTES);
  assert.throws(() => readMqttPassword(file('over', 'x'.repeat(MAX_MQTT_PASSWORD_BYTES + 1))), { code: 'CLI_INPUT', message: /at most 65535/ });
  assert.throws(() => readMqttPassword(file('huge', Buffer.alloc(1 << 20, 0x78))), { code: 'CLI_INPUT', message: /has 1048576 bytes/ });
  assert.throws(() => readMqttPassword(file('empty', '\n')), { code: 'CLI_INPUT', message: /is empty/ });
  assert.throws(() => readMqttPassword(file('two', 'one\ntwo\n')), { code: 'CLI_INPUT', message: /more than one line/ });
  assert.throws(() => readMqttPassword(join(dir, 'missing')), { code: 'CLI_INPUT', message: /cannot read the MQTT password file .*missing: ENOENT/ });
});

it('settings → options: files read and checked at start, one line per mistake', () => {
  const ca = new TestCa('mqtt-options-ca');
  const client = ca.issue('agent', 'client');
  const other = ca.issue('other', 'client');
  const paths = { ca: file('ca.pem', ca.cert), cert: file('c.pem', client.cert), key: file('c.key', client.key), otherKey: file('o.key', other.key), junk: file('junk.pem', 'not a certificate') };
  const options = resolveMqttSettings({ url: 'mqtts://localhost', username: 'kmip-edge-agent', passwordFile: file('pw', 'pw\n'), ca: paths.ca, cert: paths.cert, key: paths.key }, { clientId: 'agent-1', persistentSession: true });
  assert.equal(options.host, 'localhost');
  assert.equal(options.port, 8883);
  assert.equal(options.password?.toString(), 'pw');
  assert.equal(options.clientId, 'agent-1');
  assert.equal(options.persistentSession, true);
  assert.ok(options.tls?.ca && options.tls.cert && options.tls.key);
  assert.deepEqual(resolveMqttSettings({ url: 'mqtts://h' }).tls, {}, 'no CA: Node\'s root CAs verify the broker');
  assert.equal(resolveMqttSettings({ url: 'mqtt://h', clientId: 'mine' }, { clientId: 'default' }).clientId, 'mine');

  const refused = (settings: Parameters<typeof resolveMqttSettings>[0], message: RegExp) => assert.throws(() => resolveMqttSettings(settings), { message });
  refused({ url: 'mqtt://h', ca: paths.ca }, /^--mqtt-ca is for TLS to the broker: use an mqtts:\/\/ URL$/);
  refused({ url: 'mqtts://h', cert: paths.cert }, /^--mqtt-cert and --mqtt-key go together/);
  refused({ url: 'mqtt://h', passwordFile: file('pw2', 'x') }, /^--mqtt-password-file needs --mqtt-username$/);
  refused({ url: 'mqtts://h', ca: join(dir, 'nope.pem') }, /^cannot read the MQTT broker CA .*nope\.pem: ENOENT$/);
  refused({ url: 'mqtts://h', ca: paths.junk }, /^the MQTT broker CA .*junk\.pem holds no PEM certificate$/);
  refused({ url: 'mqtts://h', cert: paths.cert, key: paths.otherKey }, /^the MQTT client certificate .*c\.pem and key .*o\.key do not make a TLS identity/);
  refused({ url: 'mqtt://h', clientId: 'with space' }, /^--mqtt-client-id: 1 to 128 printable ASCII characters/);
});

it('the agent\'s client id: the same for the same data folder, different for another', () => {
  assert.equal(agentClientId(join(dir, 'agent')), agentClientId(join(dir, 'agent')));
  assert.equal(agentClientId(join(dir, 'agent')), agentClientId(join(dir, '.', 'agent', '..', 'agent')));
  assert.notEqual(agentClientId(join(dir, 'agent')), agentClientId(join(dir, 'agent-2')));
  assert.match(agentClientId(dir), /^kmip-edge-agent-[0-9a-f]{12}$/);
});

it('reconnect delays: exponential from 0.5 s, capped at 30 s, each in [d/2, d]', () => {
  for (let attempt = 0; attempt < 40; attempt++) {
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** attempt);
    assert.equal(reconnectDelay(attempt, () => 0), ceiling / 2);
    assert.equal(reconnectDelay(attempt, () => 0.999_999), Math.round(ceiling / 2 + (0.999_999 * ceiling) / 2));
  }
  assert.equal(reconnectDelay(1_000_000, () => 1), RECONNECT_MAX_MS);
  const draws = new Set(Array.from({ length: 50 }, () => reconnectDelay(6)));
  assert.ok(draws.size > 1, 'jittered');
});
