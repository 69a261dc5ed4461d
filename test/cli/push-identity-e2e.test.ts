/**
 * The Put/Notify listener's default identity and cipher suites (issue #12 §6, #13.8), every part a
 * real process: `kmip-edge dev-server --push-to` and `kmip-edge run --push-listen` with neither
 * --push-peer-cert nor --push-peer-name. The agent's own client certificate and another
 * certificate of the same CA valid for 127.0.0.1 get no Success for a forged Put; the real
 * upstream's pushes are acknowledged. A TLS 1.2 suite without forward secrecy is refused, an
 * ECDHE AES-GCM one accepted; `--push-ciphers` lets an old key server use what it has.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { freePort } from '../../src/bench/free-port.ts';
import { nameValue } from '../../src/kmip/attributes.ts';
import { buildRequestMessage, parseResponseMessage } from '../../src/kmip/message.ts';
import { putPayload } from '../../src/kmip/push.ts';
import { Operation, ResultStatus, State, Tag } from '../../src/kmip/tables.generated.ts';
import { tlsConnectionOptions } from '../../src/net/tls-options.ts';
import { TtlvConnection } from '../../src/net/ttlv-connection.ts';
import { byteString, enumeration, integer, structure } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { TestCa } from '../helpers/certificates.ts';
import { runCli } from '../helpers/cli.ts';
import { createActiveKey, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';

/** A Put New of a key named `name` with material 41×32 — what an intruder would plant. */
function plantedPut(uid: string, name: string): Uint8Array {
  const object = structure(Tag.SymmetricKey, [structure(Tag.KeyBlock, [enumeration(Tag.KeyFormatType, 1), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, new Uint8Array(32).fill(0x41))]), enumeration(Tag.CryptographicAlgorithm, 3), integer(Tag.CryptographicLength, 256)])]);
  const attributes = [{ name: 'Name', value: nameValue(name) }, { name: 'State', value: enumeration(Tag.AttributeValue, State.Active) }];
  return encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Put, payload: putPayload(uid, object, attributes) }], { timeStamp: new Date() }));
}

it('default push identity: the key the upstream presented to the agent — not the agent\'s own certificate, not another of the CA; ECDHE+AEAD suites only', async () => {
  const listenPort = await freePort();
  const brokerPort = await freePort();
  const { kms, data, port, server } = await startKeyServer('push-identity', ['--push-to', `127.0.0.1:${listenPort}`]);
  const file = (name: string) => readFileSync(join(kms, name));
  const runArgs = ['run', '--data', data, ...upstreamArgs(kms, port), '--embedded-broker', `127.0.0.1:${brokerPort}`,
    '--push-listen', `127.0.0.1:${listenPort}`, '--push-cert', join(kms, 'client.pem'), '--push-key', join(kms, 'client.key'), '--push-ca', join(kms, 'ca.pem')];
  let agent: ChildProcess | undefined;
  /** One message to the agent's listener as `identity`; the response status, or 'refused' when the connection is. */
  const send = async (message: Uint8Array, identity: { cert: Buffer; key: Buffer }, tls: { ciphers?: string; maxVersion?: 'TLSv1.2' } = {}): Promise<number | 'refused'> => {
    let connection: TtlvConnection;
    try {
      connection = await TtlvConnection.open({ ...tlsConnectionOptions({ host: '127.0.0.1', port: listenPort, ca: file('ca.pem'), ...identity }), ...tls }, 5000, 1 << 20);
    } catch {
      return 'refused';
    }
    try {
      return parseResponseMessage(decodeTtlv(await connection.roundTrip(message, 5000))).batchItems[0]!.resultStatus;
    } catch {
      return 'refused'; // TLS 1.3: the client certificate is refused after the client's handshake ends
    } finally {
      connection.close();
    }
  };
  try {
    const uid = await createActiveKey(kms, port, 'identity-key'); // its activation Notify is pushed at once, and retried
    agent = (await startProcess(runArgs)).child;
    // The real upstream gets through: the server's retried Notify is acknowledged.
    for (let i = 0; (JSON.parse(runCli(['dev-server', 'push', '--dir', kms, '--list']).stdout) as { unacknowledged: unknown[] }).unacknowledged.length > 0; i++) {
      assert.ok(i < 150, 'the server still has unacknowledged pushes');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(JSON.parse(runCli(['dev-server', 'push', '--dir', kms, '--notify', uid]).stdout), { pushed: 1, acknowledged: 1 });

    const upstream = { cert: file('server.pem'), key: file('server.key') };
    const ownClient = { cert: file('client.pem'), key: file('client.key') };
    const sameCa = new TestCa('dev', kms).issue('127.0.0.1', 'server+client');
    assert.equal(await send(plantedPut('planted-by-own-cert', 'planted-1'), ownClient), 'refused', "the agent's own client certificate");
    assert.equal(await send(plantedPut('planted-by-same-ca', 'planted-2'), sameCa), 'refused', 'another certificate of the CA, valid for 127.0.0.1');
    // Cipher suites (TLS 1.2): no forward secrecy → refused; ECDHE with AES-GCM → accepted.
    assert.equal(await send(plantedPut('by-static-rsa', 'planted-3'), upstream, { maxVersion: 'TLSv1.2', ciphers: 'AES256-GCM-SHA384' }), 'refused', 'static RSA key exchange');
    assert.equal(await send(plantedPut('by-cbc', 'planted-4'), upstream, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA256' }), 'refused', 'ECDHE with CBC');
    assert.equal(await send(plantedPut('by-ecdhe-gcm', 'gcm-ok'), upstream, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }), ResultStatus.Success);

    assert.equal(await terminate(agent), 0);
    // An old key server: --push-ciphers admits its suite.
    agent = (await startProcess([...runArgs, '--push-ciphers', 'AES256-GCM-SHA384'])).child;
    assert.equal(await send(plantedPut('by-old-server', 'old-ok'), upstream, { maxVersion: 'TLSv1.2', ciphers: 'AES256-GCM-SHA384' }), ResultStatus.Success, 'the learned upstream key is kept in the store across the restart');
    assert.equal(await terminate(agent), 0);
    agent = undefined;
    const cached = (JSON.parse(runCli(['cache', '--data', data, '--json']).stdout) as { keys: { uniqueIdentifier: string }[] }).keys.map((k) => k.uniqueIdentifier).sort();
    assert.deepEqual(cached, ['by-ecdhe-gcm', 'by-old-server'], 'only the pushes over accepted connections were applied');
  } finally {
    agent?.kill('SIGKILL');
    server.kill('SIGTERM');
  }
});
