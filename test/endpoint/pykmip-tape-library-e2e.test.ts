/**
 * Issue #16's tape library, end to end, every part a real process: PyKMIP's ProxyKmipClient
 * (/usr/bin/python3) as the library against `kmip-edge run --kmip-listen`, the development server
 * (LevelDB, so it can be stopped and started again) upstream. The whole scenario runs at KMIP 1.0,
 * 1.2 and 1.4 (the issue asks for each), one agent and key server for all three, a cartridge
 * key with a Name of its own per version. Online: create an AES-256 key with a Name, locate it by
 * name, get it (the key server's bytes), get its attributes, activate it. The key server is
 * stopped: Get and Locate still answer, and a Create answers from the client's pool (one pooled
 * key per version). The key server comes back: each pooled key's Name is on it (asked with
 * `kmip-edge kmip` straight at the key server). The agent's audit events show that each request
 * carried the version asked and every operation succeeded at it; nothing needed a workaround at
 * 1.0 or 1.4.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { it } from 'node:test';
import { promisify } from 'node:util';
import { keyBlockOf, keyMaterialOf } from '../../src/kmip/payloads.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { TestCa } from '../helpers/certificates.ts';
import { runCli } from '../helpers/cli.ts';
import { spawnCli, stopCli, type CliProcess } from '../helpers/cli-process.ts';
import { keyServerProcess } from '../helpers/key-server-process.ts';
import { upstreamArgs } from '../helpers/processes.ts';
import { until } from '../helpers/until.ts';

/** The versions the whole scenario runs at (issue #16). */
const VERSIONS = ['1.0', '1.2', '1.4'];

/** One PyKMIP session: `phase` says what it does; prints one JSON object. */
const SCRIPT = `
import sys, json
from kmip.pie.client import ProxyKmipClient
from kmip import enums
from kmip.core.factories import attributes as attribute_factory
phase, port, ca, cert, key, version = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
versions = {'1.0': enums.KMIPVersion.KMIP_1_0, '1.2': enums.KMIPVersion.KMIP_1_2, '1.4': enums.KMIPVersion.KMIP_1_4}
names = lambda name: [attribute_factory.AttributeFactory().create_attribute(enums.AttributeType.NAME, name)]
out = {}
with ProxyKmipClient(hostname='127.0.0.1', port=port, cert=cert, key=key, ca=ca, config_file='/dev/null', kmip_version=versions[version]) as c:
    usage = [enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT]
    if phase == 'online':
        name = sys.argv[7]
        uid = c.create(enums.CryptographicAlgorithm.AES, 256, name=name, cryptographic_usage_mask=usage)
        out['uid'] = uid
        out['located'] = c.locate(attributes=names(name))
        out['bytes'] = c.get(uid).value.hex()
        # Names asked explicitly: ProxyKmipClient cannot parse every attribute an "all attributes" answer may hold.
        attributes = c.get_attributes(uid, ['Cryptographic Algorithm', 'Cryptographic Length', 'Name'])[1]
        out['attributes'] = {a.attribute_name.value: str(a.attribute_value) for a in attributes}
        c.activate(uid)
        out['state'] = str(c.get_attributes(uid, ['State'])[1][0].attribute_value.value)
    elif phase == 'offline':
        out['bytes'] = c.get(sys.argv[7]).value.hex()
        out['located'] = c.locate(attributes=names(sys.argv[8]))
        out['created'] = c.create(enums.CryptographicAlgorithm.AES, 256, name=sys.argv[9], cryptographic_usage_mask=usage)
        out['createdBytes'] = len(c.get(out['created']).value)
print(json.dumps(out))
`;

it("PyKMIP's client as the tape library at KMIP 1.0, 1.2 and 1.4: online, offline (Get, Locate, Create from the pool), and each pooled key's Name upstream once the key server is back", { timeout: 240_000 }, async () => {
  assert.ok(existsSync('/usr/bin/python3'), 'needs /usr/bin/python3 with python3-pykmip (sudo scripts/install-peers.sh)');
  const server = await keyServerProcess('tape-library-e2e');
  await server.start();
  const work = dirname(server.kms);
  const data = join(work, 'agent');
  let agent: CliProcess | undefined;
  try {
    const site = new TestCa('branch site CA');
    const write = (name: string, bytes: Buffer): string => (writeFileSync(join(work, name), bytes), join(work, name));
    const endpoint = site.issue('kmip-edge endpoint', 'server');
    const library = site.issue('tape-lib-1', 'client');
    const files = { ca: write('site-ca.pem', site.cert), cert: write('endpoint.pem', endpoint.cert), key: write('endpoint.key', endpoint.key), library: write('lib.pem', library.cert), libraryKey: write('lib.key', library.key) };
    const added = runCli(['client', 'add', '--data', data, '--id', 'lib-1', '--cert', files.library, '--pool', `AES-256=${VERSIONS.length}`]);
    assert.equal(added.status, 0, added.stderr);
    agent = spawnCli(['run', '--data', data, ...upstreamArgs(server.kms, server.port), '--kmip-listen', '127.0.0.1:0', '--kmip-cert', files.cert, '--kmip-key', files.key, '--kmip-ca', files.ca, '--log-level', 'debug']);
    const ready = await agent.firstLine();
    await agent.waitForLog((line) => line.event === 'pool_filled' && line.clientId === 'lib-1' && line.ready === VERSIONS.length, 'the pool of lib-1 filled');
    const port = Number(String(ready.kmipListen).split(':')[1]);
    const pykmip = async (phase: string, version: string, ...rest: string[]) => {
      const run = await promisify(execFile)('/usr/bin/python3', ['-c', SCRIPT, phase, String(port), files.ca, files.library, files.libraryKey, version, ...rest], { encoding: 'utf8', timeout: 60_000 });
      return JSON.parse(run.stdout) as Record<string, unknown>;
    };
    /**
     * What the agent's audit (kmip_client_request) saw of lib-1 from log line `from` on: per
     * item the request's Protocol Version (KMIP 1.0 §6.1), operation and result — so that PyKMIP
     * spoke the version asked, and every operation succeeded at it.
     */
    const audited = async (from: number, count: number): Promise<string[]> => {
      const items = () => agent!.logs.slice(from)
        .filter((line) => line.event === 'kmip_client_request' && line.client === 'lib-1')
        .flatMap((line) => (line.items as { operation: string; status: string }[]).map((item) => `${String(line.version)} ${item.operation} ${item.status}`));
      // The agent writes its log lines at most 50 ms after them (src/log.ts LOG_FLUSH_MS): the last
      // requests' lines may come after PyKMIP has exited. Waited for; a shortfall is then shown by the comparison.
      await until(() => items().length >= count, `${count} audited items`).catch(() => undefined);
      return items();
    };

    // Online, at each version: a cartridge key of its own per version (distinct Names, one agent).
    const cartridges = VERSIONS.map((version, i) => ({ version, name: `cartridge-A0000${i + 1}`, pooledName: `cartridge-B0000${i + 1}`, uid: '', expected: '', created: '' }));
    for (const cartridge of cartridges) {
      const from: number = agent.logs.length;
      const online = await pykmip('online', cartridge.version, cartridge.name);
      const at = `online at KMIP ${cartridge.version}`;
      const expected = ['Create', 'Locate', 'Get', 'GetAttributes', 'Activate', 'GetAttributes'].map((operation) => `${cartridge.version} ${operation} Success`);
      assert.deepEqual(await audited(from, expected.length), expected, at);
      cartridge.uid = String(online.uid);
      cartridge.expected = await server.admin(async (admin) => toHex(keyMaterialOf(keyBlockOf((await admin.get(cartridge.uid)).object))));
      assert.deepEqual(online.located, [cartridge.uid], at);
      assert.equal(online.bytes, cartridge.expected, at);
      const attributes = online.attributes as Record<string, string>;
      assert.match(String(attributes['Cryptographic Algorithm']), /AES/, at);
      assert.match(String(attributes['Cryptographic Length']), /256/, at);
      assert.match(String(attributes.Name), new RegExp(cartridge.name), at);
      assert.equal(online.state, 'State.ACTIVE', at);
    }

    // The key server is stopped: served from the cache, and a Create from the pool, at each version.
    await server.stop();
    for (const cartridge of cartridges) {
      const from: number = agent.logs.length;
      const offline = await pykmip('offline', cartridge.version, cartridge.uid, cartridge.name, cartridge.pooledName);
      const at = `offline at KMIP ${cartridge.version}`;
      const expected = ['Get', 'Locate', 'Create', 'Get'].map((operation) => `${cartridge.version} ${operation} Success`);
      assert.deepEqual(await audited(from, expected.length), expected, at);
      assert.equal(offline.bytes, cartridge.expected, at);
      assert.deepEqual(offline.located, [cartridge.uid], at);
      assert.equal(offline.createdBytes, 32, at);
      cartridge.created = String(offline.created);
      await agent.waitForLog((line) => line.event === 'pool_key_taken' && line.uid === cartridge.created, `the pooled key taken at KMIP ${cartridge.version}`);
    }

    // The key server is back: the outbox writes each pooled key's Name; the key server has it.
    await server.start();
    for (const cartridge of cartridges) {
      await agent.waitForLog((line) => line.event === 'outbox_drained' && line.uid === cartridge.created, `the outbox entry of KMIP ${cartridge.version}'s pooled key written upstream`, 120_000);
      const direct = runCli(['kmip', '--server', `127.0.0.1:${server.port}`, '--ca', join(server.kms, 'ca.pem'), '--cert', join(server.kms, 'client.pem'), '--key', join(server.kms, 'client.key'), 'locate', '--name', cartridge.pooledName]);
      assert.equal(direct.status, 0, direct.stderr);
      assert.deepEqual((JSON.parse(direct.stdout) as { uniqueIdentifiers: string[] }).uniqueIdentifiers, [cartridge.created], `the Name of KMIP ${cartridge.version}'s pooled key upstream`);
    }
  } finally {
    assert.equal(await stopCli(agent), 0, agent?.stderr.slice(-2000));
    await server.stop();
  }
});
