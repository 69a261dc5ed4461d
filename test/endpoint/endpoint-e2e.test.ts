/**
 * The local KMIP endpoint end to end, every part a real process (issue #16): `kmip-edge
 * dev-server` upstream, `kmip-edge run --kmip-listen` with a client registered by `kmip-edge
 * client add` while the agent is stopped, and `kmip-edge kmip` with the library's certificate as
 * the tape library: a Get of a key served (bytes equal the key server's). While the agent runs,
 * `client add|list|update|remove` go through its admin socket and apply at once; a key outside the
 * client's list is Item Not Found; a certificate of the site CA that is not registered is refused
 * and logged with its fingerprint; the client's key pool is filled; the endpoint's counts reach
 * /metrics.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { clientCertificate } from '../../src/endpoint/client-registry.ts';
import { keyBlockOf, keyMaterialOf } from '../../src/kmip/payloads.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { TestCa } from '../helpers/certificates.ts';
import { runCli } from '../helpers/cli.ts';
import { spawnCli, stopCli, type CliProcess } from '../helpers/cli-process.ts';
import { adminClient, createActiveKey, startKeyServer, upstreamArgs } from '../helpers/processes.ts';

it('run --kmip-listen serves a registered tape library its key; clients are managed while the agent runs; the rest is refused', { timeout: 240_000 }, async () => {
  const { work, kms, data, port, server } = await startKeyServer('kmip-endpoint-e2e');
  let agent: CliProcess | undefined;
  try {
    // The site's PKI: the endpoint's certificate and two library certificates; one stays unregistered.
    const site = new TestCa('branch site CA');
    const file = (name: string, bytes: Buffer): string => {
      const path = join(work, name);
      writeFileSync(path, bytes);
      return path;
    };
    const endpoint = site.issue('kmip-edge endpoint', 'server');
    const [library, second, stranger] = ['tape-lib-1', 'tape-lib-2', 'stranger'].map((cn) => site.issue(cn, 'client')) as [typeof endpoint, typeof endpoint, typeof endpoint];
    const paths = {
      ca: file('site-ca.pem', site.cert), cert: file('endpoint.pem', endpoint.cert), key: file('endpoint.key', endpoint.key),
      library: file('lib-1.pem', library.cert), libraryKey: file('lib-1.key', library.key),
      second: file('lib-2.pem', second.cert), secondKey: file('lib-2.key', second.key),
      stranger: file('stranger.pem', stranger.cert), strangerKey: file('stranger.key', stranger.key),
    };
    const tapeKey = await createActiveKey(kms, port, 'cartridge-A00001');
    const otherKey = await createActiveKey(kms, port, 'someone-else');

    // Registered with the agent stopped (the command opens the store itself).
    const added = runCli(['client', 'add', '--data', data, '--id', 'lib-1', '--cert', paths.library, '--key-name', 'cartridge-A00001', '--pool', 'AES-256:tapes=4']);
    assert.equal(added.status, 0, added.stderr);
    const addedJson = JSON.parse(added.stdout) as Record<string, unknown>;
    assert.equal(addedJson.spkiSha256, clientCertificate(new X509Certificate(library.cert)).spkiSha256);
    assert.deepEqual(addedJson.pool, ['AES-256:tapes=4']);
    assert.deepEqual(addedJson.keys, [{ name: 'cartridge-A00001' }]);

    agent = spawnCli(['run', '--data', data, ...upstreamArgs(kms, port), '--kmip-listen', '127.0.0.1:0', '--kmip-cert', paths.cert, '--kmip-key', paths.key, '--kmip-ca', paths.ca, '--metrics', '127.0.0.1:0']);
    const ready = await agent.firstLine();
    assert.equal(ready.ready, true);
    assert.match(String(ready.kmipListen), /^127\.0\.0\.1:\d+$/);
    // The client's pool template is filled from the key server (offline Create's keys, issue #16).
    const filled = await agent.waitForLog((line) => line.event === 'pool_filled' && line.clientId === 'lib-1', 'the pool of lib-1 filled');
    assert.equal(filled.size, 4);
    const status = JSON.parse(runCli(['status', '--data', data, '--json']).stdout) as { kmipEndpoint: Record<string, unknown>; keyPool: { templates: { clientId: string; ready: number; size: number }[] } };
    assert.equal(status.kmipEndpoint.listen, ready.kmipListen);
    assert.equal(status.kmipEndpoint.clients, 1);
    assert.deepEqual(status.keyPool.templates.map((t) => [t.clientId, t.ready, t.size]), [['lib-1', 4, 4]]);
    assert.match(runCli(['status', '--data', data]).stdout, /^kmip endpoint on 127\.0\.0\.1:\d+: 1 clients registered, 0 connections open\n {2}pool lib-1 \S+: 4 of 4 keys ready\n {2}outbox: 0 pending, 0 in conflict$/m);
    const kmip = (identity: { cert: string; key: string }, ...args: string[]) => {
      const run = runCli(['kmip', '--server', String(ready.kmipListen), '--ca', paths.ca, '--cert', identity.cert, '--key', identity.key, '--version', '1.2', ...args]);
      return { status: run.status, json: run.stdout ? (JSON.parse(run.stdout) as Record<string, unknown>) : {}, stderr: run.stderr };
    };
    const lib1 = { cert: paths.library, key: paths.libraryKey };

    // The tape library gets its key: the key server's bytes.
    const admin = adminClient(kms, port);
    const expected = toHex(keyMaterialOf(keyBlockOf((await admin.get(tapeKey)).object)));
    await admin.close();
    const got = kmip(lib1, 'get', '--uid', tapeKey);
    assert.equal(got.status, 0, got.stderr);
    assert.equal(got.json.uniqueIdentifier, tapeKey);
    assert.equal(got.json.keyMaterial, expected);
    // A key outside its list does not exist for it.
    const outside = kmip(lib1, 'get', '--uid', otherKey);
    assert.equal(outside.status, 1);
    assert.equal((outside.json.error as Record<string, string>).resultReason, 'ItemNotFound');

    // While the agent runs: a second client is added, listed, updated, and removed — each at once.
    const viaAgent = runCli(['client', 'add', '--data', data, '--id', 'lib-2', '--cert', paths.second, '--key-id', otherKey, '--operation', 'Get']);
    assert.equal(viaAgent.status, 0, viaAgent.stderr);
    const lib2 = { cert: paths.second, key: paths.secondKey };
    const served = kmip(lib2, 'get', '--uid', otherKey);
    assert.equal(served.status, 0, served.stderr);
    const listed = JSON.parse(runCli(['client', 'list', '--data', data, '--json']).stdout) as { clients: { id: string; operations: string[] }[] };
    assert.deepEqual(listed.clients.map((client) => client.id), ['lib-1', 'lib-2']);
    assert.deepEqual(listed.clients[1]!.operations, ['Get']);
    const human = runCli(['client', 'list', '--data', data]);
    assert.match(human.stdout, /^lib-1  CN=tape-lib-1\n {2}SPKI sha256 {2}[0-9a-f]{64}\n/);
    assert.equal(runCli(['client', 'update', '--data', data, '--id', 'lib-2', '--operation', 'DiscoverVersions']).status, 0);
    const notAllowed = kmip(lib2, 'get', '--uid', otherKey);
    assert.equal(notAllowed.status, 1);
    assert.equal((notAllowed.json.error as Record<string, string>).resultReason, 'PermissionDenied');
    const removed = runCli(['client', 'remove', '--data', data, '--id', 'lib-2']);
    assert.deepEqual(JSON.parse(removed.stdout), { id: 'lib-2', removed: true });
    const gone = kmip(lib2, 'discover-versions');
    assert.equal(gone.status, 1, 'a removed client is refused');

    // The same CA, not registered: refused, and its fingerprint logged for the operator.
    const refused = kmip({ cert: paths.stranger, key: paths.strangerKey }, 'discover-versions');
    assert.equal(refused.status, 1);
    const logged = await agent.waitForLog((line) => line.event === 'kmip_client_unregistered' && line.subjectCN === 'stranger', 'the unregistered client logged');
    assert.equal(logged.spkiSha256, clientCertificate(new X509Certificate(stranger.cert)).spkiSha256);
    for (const event of ['client_added', 'client_updated', 'client_removed']) await agent.waitForLog((line) => line.event === event && line.client === 'lib-2', event);

    // The endpoint's counts on /metrics.
    const metrics = await (await fetch(`http://${String(ready.metrics)}/metrics`)).text();
    assert.match(metrics, /^kmip_edge_kmip_requests_total\{operation="Get",result="Success"\} 2$/m);
    assert.match(metrics, /^kmip_edge_kmip_requests_total\{operation="Get",result="ItemNotFound"\} 1$/m);
    assert.match(metrics, /^kmip_edge_kmip_connections_total\{event="unregistered"\} [1-9]\d*$/m);
    assert.doesNotMatch(metrics, /lib-1|lib-2|stranger/, 'no client id is a label');
  } finally {
    assert.equal(await stopCli(agent), 0, agent?.stderr);
    server.kill('SIGTERM');
  }
});
