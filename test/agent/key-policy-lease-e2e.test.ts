/**
 * Issue #12 §5 with real processes: `kmip-edge dev-server --push-to`, `kmip-edge run
 * --push-listen`, Mosquitto, `kmip-edge device-sim`. A key created (Pre-Active), asked for by a
 * device (refused KEY_NOT_ACTIVE, and cached without a lease), then activated by the operator
 * (`kmip-edge kmip activate`): once the server's Notify of the activation is applied, the device's
 * Get is served — it used to be refused KEY_LEASE_EXPIRED until some device sent Obtain Lease.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { freePort } from '../../src/bench/free-port.ts';
import { ObjectType } from '../../src/kmip/tables.generated.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { runCli } from '../helpers/cli.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';
import { until } from '../helpers/until.ts';

it('activate after a device asked for a Pre-Active key: its Get is served once the Notify is applied, not KEY_LEASE_EXPIRED', async () => {
  const broker = await startMosquitto();
  const listenPort = await freePort();
  const { work, kms, data, port, server } = await startKeyServer('lease-activate', ['--push-to', `127.0.0.1:${listenPort}`]);
  let agent: ChildProcess | undefined;
  try {
    const admin = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port, ca: readFileSync(join(kms, 'ca.pem')), cert: readFileSync(join(kms, 'client.pem')), key: readFileSync(join(kms, 'client.key')) }), version: { major: 1, minor: 2 } });
    const uid = await admin.create(ObjectType.SymmetricKey, aesKey('activated-later'));
    await admin.close();
    const key = addDevice(data, 'lease-dev', uid);
    const run = await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${broker.port}`,
      '--push-listen', `127.0.0.1:${listenPort}`, '--push-cert', join(kms, 'client.pem'), '--push-key', join(kms, 'client.key'), '--push-ca', join(kms, 'ca.pem')]);
    agent = run.child;
    let stderr = '';
    agent.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const sim = () => runCli(['device-sim', '--id', 'lease-dev', '--key', key, '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--state', join(work, 'lease.counter'), 'get', '--uid', uid]);

    const early = JSON.parse(sim().stdout.trim()) as { ok: boolean; resultMessage?: string };
    assert.deepEqual([early.ok, early.resultMessage], [false, 'KEY_NOT_ACTIVE']);

    const activated = runCli(['kmip', '--server', `127.0.0.1:${port}`, '--ca', join(kms, 'ca.pem'), '--cert', join(kms, 'client.pem'), '--key', join(kms, 'client.key'), 'activate', '--uid', uid]);
    assert.equal(activated.status, 0, `${activated.stdout} ${activated.stderr}`);
    await until(() => /notify applied/.test(stderr), 'the agent to apply the Notify of the activation', 30_000);
    const served = sim();
    assert.equal(served.status, 0, `${served.stdout} ${stderr}`);
    assert.equal((JSON.parse(served.stdout.trim()) as { ok: boolean }).ok, true);
    assert.equal(await terminate(agent), 0);
    agent = undefined;
  } finally {
    agent?.kill('SIGKILL');
    server.kill('SIGTERM');
    await broker.stop();
  }
});
