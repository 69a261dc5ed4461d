/**
 * Issue #13 finding 1, every part a real process (dev server, Mosquitto, `kmip-edge run`,
 * `kmip-edge device-sim`): a device Get of an object too large for one device frame (a Secret
 * Data of 4,200 bytes; the frame limit is 4096, PROTOCOL.md §2) is answered Operation Failed /
 * Response Too Large naming the limit, and the agent keeps serving everyone else — it used to
 * exit on an exception thrown inside the transport's unawaited frame handler. The same object
 * pushed by the server as a Put is applied and acknowledged upstream but not relayed to the
 * device (it cannot fit in a frame), and the agent stays up.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { nameValue } from '../../src/kmip/attributes.ts';
import { CryptographicUsageMask, KeyFormatType, ObjectType, SecretDataType, Tag } from '../../src/kmip/tables.generated.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { byteString, enumeration, integer, structure } from '../../src/ttlv/build.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { freePort } from '../../src/bench/free-port.ts';
import { runCli } from '../helpers/cli.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { until } from '../helpers/until.ts';
import { addDevice, createActiveKey, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';

async function registerLargeSecret(kms: string, port: number, bytes: number): Promise<string> {
  const admin = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port, ca: readFileSync(join(kms, 'ca.pem')), cert: readFileSync(join(kms, 'client.pem')), key: readFileSync(join(kms, 'client.key')) }), version: { major: 1, minor: 2 } });
  try {
    const object = structure(Tag.SecretData, [
      enumeration(Tag.SecretDataType, SecretDataType.Password),
      structure(Tag.KeyBlock, [enumeration(Tag.KeyFormatType, KeyFormatType.Opaque), structure(Tag.KeyValue, [byteString(Tag.KeyMaterial, new Uint8Array(bytes).fill(0x5a))])]),
    ]);
    const uid = await admin.register(ObjectType.SecretData, [
      { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.Verify) },
      { name: 'Name', value: nameValue('large-secret') },
    ], object);
    await admin.activate(uid);
    return uid;
  } finally {
    await admin.close();
  }
}

it('a device Get of a 4,200-byte Secret Data: Response Too Large for that device, the agent keeps serving; its Put is acknowledged, not relayed', async () => {
  const broker = await startMosquitto();
  const listenPort = await freePort();
  const { work, kms, data, port, server } = await startKeyServer('large-object', ['--push-to', `127.0.0.1:${listenPort}`]);
  let agent: ChildProcess | undefined;
  let stderr = '';
  try {
    const large = await registerLargeSecret(kms, port, 4200);
    const small = await createActiveKey(kms, port, 'small-key');
    const key = addDevice(data, 'big-dev', large, small);
    const run = await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${broker.port}`,
      '--push-listen', `127.0.0.1:${listenPort}`, '--push-cert', join(kms, 'client.pem'), '--push-key', join(kms, 'client.key'), '--push-ca', join(kms, 'ca.pem')]);
    agent = run.child;
    agent.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const sim = (...action: string[]) => runCli(['device-sim', '--id', 'big-dev', '--key', key, '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--state', join(work, 'big.counter'), ...action]);

    const tooLarge = sim('get', '--uid', large);
    assert.equal(tooLarge.status, 1, `${tooLarge.stdout} ${tooLarge.stderr}`);
    const line = JSON.parse(tooLarge.stdout.trim()) as { ok: boolean; resultReason?: string; resultMessage?: string };
    assert.equal(line.ok, false);
    assert.equal(line.resultReason, 'ResponseTooLarge');
    assert.match(line.resultMessage ?? '', /4096/, 'the message names the frame limit');
    assert.equal(agent.exitCode, null, `the agent is still running: ${stderr}`);

    const fine = sim('get', '--uid', small, '--repeat', '2');
    assert.equal(fine.status, 0, `the agent still serves: ${fine.stdout} ${fine.stderr} ${stderr}`);

    // The server pushes the large object as a Put: applied and acknowledged, not relayed (it does not fit a frame).
    const pushed = JSON.parse(runCli(['dev-server', 'push', '--dir', kms, '--put', large]).stdout) as { pushed: number; acknowledged: number };
    assert.deepEqual(pushed, { pushed: 1, acknowledged: 1 });
    await until(() => /push too large for a device frame: not relayed/.test(stderr), 'the agent to log the push it could not relay', 20_000);
    const again = sim('get', '--uid', small);
    assert.equal(again.status, 0, `${again.stdout} ${stderr}`);
    assert.equal(agent.exitCode, null, `the agent is still running: ${stderr}`);
    assert.equal(await terminate(agent), 0);
    agent = undefined;
  } finally {
    agent?.kill('SIGKILL');
    server.kill('SIGTERM');
    await broker.stop();
  }
});
