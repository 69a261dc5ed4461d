/**
 * Nonce-MAC with real processes: `kmip-edge run --nonce-mac-key` fills its cache with MAC-wrapped,
 * nonce-checked Gets from `kmip-edge dev-server`; `device-sim get-verified` does the same end to
 * end through Mosquitto and the agent, verifying itself, and fails with the wrong MAC key.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { it } from 'node:test';
import { keyBlockOf, keyMaterialOf } from '../../src/kmip/payloads.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { runCli } from '../helpers/cli.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { addDevice, adminClient, createActiveKey, createMacKey, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';

it('run --nonce-mac-key and device-sim get-verified: keys verified at the agent and at the device', async () => {
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('nonce-e2e');
  const admin = adminClient(kms, port);
  let agent: ChildProcess | undefined;
  try {
    const { uid: macUid, material: macKey } = await createMacKey(admin);
    const agentKey = await createActiveKey(kms, port, 'agent-verified');
    const deviceKey = await createActiveKey(kms, port, 'device-verified');
    const key = addDevice(data, 'verifier', agentKey, deviceKey, macUid);
    agent = (await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--nonce-mac-key', macUid])).child;
    const sim = (...action: string[]) => runCli(['device-sim', '--id', 'verifier', '--key', key, '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--state', join(work, 'verifier.counter'), ...action]);

    // (a) the agent's cache fill sets x-Nonce and verifies the MAC before serving the key.
    const got = sim('get', '--uid', agentKey);
    assert.equal(got.status, 0, got.stdout + got.stderr);
    assert.equal((await admin.getAttributes(agentKey, ['x-Nonce'])).attributes.length, 1, 'the agent set a nonce on the key');

    // (b) the device sets its own nonce and verifies the MAC itself.
    const verified = sim('get-verified', '--uid', deviceKey, '--mac-uid', macUid, '--mac-key', macKey, '--repeat', '2');
    assert.equal(verified.status, 0, verified.stdout + verified.stderr);
    for (const line of verified.stdout.trim().split('\n')) assert.deepEqual((({ ok, verified: v, bytes }) => ({ ok, v, bytes }))(JSON.parse(line) as { ok: boolean; verified: boolean; bytes: number }), { ok: true, v: true, bytes: 32 });
    assert.ok(!verified.stdout.includes(toHex(keyMaterialOf(keyBlockOf((await admin.get(deviceKey)).object)))), 'device-sim never prints the key');

    const wrongMac = sim('get-verified', '--uid', deviceKey, '--mac-uid', macUid, '--mac-key', '00'.repeat(32));
    assert.equal(wrongMac.status, 1);
    assert.match(wrongMac.stdout, /"ok":false,"error":"KMIP_MAC_INVALID"/);

    assert.equal(await terminate(agent), 0);
    agent = undefined;
  } finally {
    agent?.kill('SIGKILL');
    await admin.close();
    server.kill('SIGTERM');
    await broker.stop();
  }
});
