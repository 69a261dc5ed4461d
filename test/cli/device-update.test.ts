/**
 * `kmip-edge device update` (issue #12 §5), every part a real process: a Put Replace from
 * `kmip-edge dev-server` gives the key a new Unique Identifier, which strands a device allowed
 * by the old one; `device update --key-uid NEW` through the running agent's admin socket lets it
 * be served at once, with the same device key. On a stopped agent's store the change is made in
 * the store and kept.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { freePort } from '../../src/bench/free-port.ts';
import { runCli } from '../helpers/cli.ts';
import { addDevice, createActiveKey, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';

it('a device stranded by a Put Replace is served the new key after device update, without a new device key', async () => {
  const listenPort = await freePort();
  const brokerPort = await freePort();
  const { work, kms, data, port, server } = await startKeyServer('device-update', ['--push-to', `127.0.0.1:${listenPort}`]);
  let agent: Awaited<ReturnType<typeof startProcess>>['child'] | undefined;
  try {
    const first = await createActiveKey(kms, port, 'tape-key');
    const key = addDevice(data, 'tape-9', first);
    agent = (await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--embedded-broker', `127.0.0.1:${brokerPort}`,
      '--push-listen', `127.0.0.1:${listenPort}`, '--push-cert', join(kms, 'client.pem'), '--push-key', join(kms, 'client.key'), '--push-ca', join(kms, 'ca.pem')])).child;
    const get = (uid: string): { ok: boolean; resultReason?: string } => {
      const sim = runCli(['device-sim', '--id', 'tape-9', '--key', key, '--mqtt', `mqtt://127.0.0.1:${brokerPort}`, '--state', join(work, 'tape.counter'), 'get', '--uid', uid]);
      assert.ok(sim.status === 0 || sim.status === 1, sim.stderr);
      return JSON.parse(sim.stdout) as { ok: boolean; resultReason?: string };
    };
    assert.equal(get(first).ok, true);

    // The key server replaces the key: the agent acknowledges the Put and caches the new one.
    const second = await createActiveKey(kms, port, 'tape-key-2');
    const pushed = JSON.parse(runCli(['dev-server', 'push', '--dir', kms, '--put', second, '--replaces', first]).stdout) as { pushed: number; acknowledged: number };
    assert.deepEqual(pushed, { pushed: 1, acknowledged: 1 });
    const stranded = get(second);
    assert.equal(stranded.ok, false, 'allowed by the old Unique Identifier only');

    const updated = runCli(['device', 'update', '--data', data, '--id', 'tape-9', '--key-uid', second]);
    assert.equal(updated.status, 0, updated.stderr);
    const device = JSON.parse(updated.stdout) as { id: string; keys: unknown[]; operations: string[]; updated: boolean; key?: string };
    assert.deepEqual(device.keys, [{ uniqueIdentifier: second }]);
    assert.equal(device.updated, true);
    assert.equal(device.key, undefined, 'the device key is never printed again');
    assert.equal(get(second).ok, true, 'served at once, same device key');
    assert.equal(get(first).ok, false, 'the old identifier is no longer on the list');

    // An unknown device: exit 1; a bad operation name: exit 2.
    const missing = runCli(['device', 'update', '--data', data, '--id', 'nobody', '--key-uid', second]);
    assert.equal(missing.status, 1);
    assert.deepEqual(JSON.parse(missing.stdout), { id: 'nobody', updated: false });
    const badOperation = runCli(['device', 'update', '--data', data, '--id', 'tape-9', '--operation', 'Destroy']);
    assert.equal(badOperation.status, 2);
    assert.match(badOperation.stderr, /^kmip-edge: --operation Destroy: one of Get, GetAttributes/);

    assert.equal(await terminate(agent), 0);
    agent = undefined;
    // Stopped agent: the store itself is changed, the key rules kept.
    const offline = runCli(['device', 'update', '--data', data, '--id', 'tape-9', '--operation', 'Get', '--rate', '5']);
    assert.equal(offline.status, 0, offline.stderr);
    const listed = (JSON.parse(runCli(['device', 'list', '--data', data]).stdout) as { devices: { id: string; keys: unknown[]; operations: string[]; limits: { requestsPerSecond: number } }[] }).devices;
    assert.deepEqual(listed.map((d) => [d.id, d.keys, d.operations, d.limits.requestsPerSecond]), [['tape-9', [{ uniqueIdentifier: second }], ['Get'], 5]]);
  } finally {
    agent?.kill('SIGKILL');
    server.kill('SIGTERM');
  }
});
