/**
 * MQTT over TLS to a real Mosquitto (certificates from test/helpers/certificates.ts, client
 * certificates required by the broker), every part a real process: `kmip-edge run` and
 * `kmip-edge device-sim` with mqtts://, --mqtt-ca, --mqtt-cert and --mqtt-key verify the broker
 * and are served; a broker certificate from another CA is refused with the reason logged (the
 * agent keeps retrying) or printed (device-sim, exit 1); a name the broker's certificate does not
 * carry is refused (host name verified); a certificate and key that do not match are exit 2.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { TestCa } from '../helpers/certificates.ts';
import { spawnCli, stopCli, type CliProcess } from '../helpers/cli-process.ts';
import { ownedByBroker, startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, createActiveKey, startKeyServer, upstreamArgs } from '../helpers/processes.ts';

it('mqtts:// to Mosquitto: the broker verified (chain and name), client certificates; a wrong CA or name refused with the reason', async () => {
  const ca = new TestCa('kmip-edge-mqtt-test-ca');
  const otherCa = new TestCa('some-other-ca');
  const file = (name: string, content: Buffer) => {
    const path = join(ca.dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  };
  const brokerCert = ca.issue('localhost', 'server');
  const agentCert = ca.issue('kmip-edge-agent', 'client');
  const deviceCert = ca.issue('tls-dev', 'client');
  const paths = {
    ca: file('mqtt-ca.pem', ca.cert), otherCa: file('other-ca.pem', otherCa.cert),
    agentCert: file('agent.pem', agentCert.cert), agentKey: file('agent.key', agentCert.key),
    deviceCert: file('device.pem', deviceCert.cert), deviceKey: file('device.key', deviceCert.key),
  };
  // The broker's own copies, readable by it; listening on every address, so that 127.0.0.2 (not
  // in its certificate) reaches it too.
  const brokerDir = mkdtempSync(join(tmpdir(), 'kmip-edge-mosquitto-tls-'));
  for (const [name, content] of [['ca.pem', ca.cert], ['broker.pem', brokerCert.cert], ['broker.key', brokerCert.key]] as const) writeFileSync(join(brokerDir, name), content, { mode: 0o600 });
  ownedByBroker(brokerDir, ...['ca.pem', 'broker.pem', 'broker.key'].map((name) => join(brokerDir, name)));
  const broker = await startMosquitto({
    dir: brokerDir,
    config: (port) => `listener ${port}\ncafile ${join(brokerDir, 'ca.pem')}\ncertfile ${join(brokerDir, 'broker.pem')}\nkeyfile ${join(brokerDir, 'broker.key')}\nrequire_certificate true\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nlog_dest stderr\nlog_type error\n`,
  });
  const { work, kms, data, port, server } = await startKeyServer('mqtt-tls');
  let agent: CliProcess | undefined;
  let lost: CliProcess | undefined;
  try {
    const uid = await createActiveKey(kms, port, 'tls-key');
    const key = addDevice(data, 'tls-dev', uid);
    const tlsArgs = (host: string, caFile: string, cert = paths.deviceCert, certKey = paths.deviceKey) => ['--mqtt', `mqtts://${host}:${broker.port}`, '--mqtt-ca', caFile, '--mqtt-cert', cert, '--mqtt-key', certKey];
    const sim = (...args: string[]) => runCli(['device-sim', '--id', 'tls-dev', '--key', key, '--state', join(work, 'dev.counter'), '--timeout', '5', ...args, 'get', '--uid', uid]);

    agent = spawnCli(['run', '--data', data, ...upstreamArgs(kms, port), ...tlsArgs('127.0.0.1', paths.ca, paths.agentCert, paths.agentKey)]);
    const ready = await agent.firstLine();
    assert.equal(ready.mqttState, 'connected');
    assert.equal(ready.mqtt, `mqtts://127.0.0.1:${broker.port}`);
    for (const host of ['127.0.0.1', 'localhost']) {
      const got = sim(...tlsArgs(host, paths.ca));
      assert.equal(got.status, 0, `${host}: ${got.stdout} ${got.stderr}`);
    }

    // The broker's certificate is not from the CA the client trusts.
    const wrongCa = sim(...tlsArgs('127.0.0.1', paths.otherCa));
    assert.equal(wrongCa.status, 1);
    assert.match(wrongCa.stderr, /^kmip-edge: cannot connect to the MQTT broker mqtts:\/\/127\.0\.0\.1:\d+ within 5 s: .*(self-signed certificate in certificate chain|unable to verify|unable to get local issuer).*\n$/);
    // Reached by a name its certificate does not carry (it has localhost and 127.0.0.1).
    const wrongName = sim(...tlsArgs('127.0.0.2', paths.ca));
    assert.equal(wrongName.status, 1);
    assert.match(wrongName.stderr, /IP: 127\.0\.0\.2 is not in the cert's list/);
    // No client certificate: this broker requires one.
    const noCert = runCli(['device-sim', '--id', 'tls-dev', '--key', key, '--state', join(work, 'dev.counter'), '--timeout', '3', '--mqtt', `mqtts://127.0.0.1:${broker.port}`, '--mqtt-ca', paths.ca, 'get', '--uid', uid]);
    assert.equal(noCert.status, 1, noCert.stderr);
    // Certificate and key that do not belong together, and TLS flags on a plain URL: usage errors.
    const mismatched = sim(...tlsArgs('127.0.0.1', paths.ca, paths.deviceCert, paths.agentKey));
    assert.equal(mismatched.status, 2);
    assert.match(mismatched.stderr, /^kmip-edge: the MQTT client certificate .*device\.pem and key .*agent\.key do not make a TLS identity: .*\n$/);
    const plain = sim('--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--mqtt-ca', paths.ca);
    assert.deepEqual([plain.status, plain.stderr], [2, 'kmip-edge: --mqtt-ca is for TLS to the broker: use an mqtts:// URL\n']);

    // An agent that trusts another CA: not connected, the reason in its log, still trying.
    lost = spawnCli(['run', '--data', join(work, 'other-agent'), ...upstreamArgs(kms, port), ...tlsArgs('127.0.0.1', paths.otherCa, paths.agentCert, paths.agentKey)]);
    assert.equal((await lost.firstLine()).mqttState, 'connecting');
    const failed = await lost.waitForLog((line) => line.event === 'mqtt.connect_failed', 'the refused handshake logged');
    assert.match(String(failed.reason), /self-signed certificate in certificate chain|unable to verify|unable to get local issuer/);
    const retried = await lost.waitForLog((line) => line.event === 'mqtt.connect_failed' && line.attempt === 2, 'a second attempt', 30_000);
    assert.ok((retried.retryInMs as number) > 0);
    assert.equal(lost.child.exitCode, null);
  } finally {
    await stopCli(lost);
    await stopCli(agent);
    server.kill('SIGTERM');
    await broker.stop();
  }
});
