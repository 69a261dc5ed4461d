/**
 * A KMIP client of another implementation through the local KMIP door (issue #16): PyKMIP's
 * ProxyKmipClient (/usr/bin/python3, Debian python3-pykmip) as the tape library, with its TLS
 * defaults, against the listener with its default cipher list, the registry and the edge KMIP
 * service on a real agent core whose upstream is the development server: Get of a key at KMIP
 * 1.0, 1.2 and 1.4 gives the key server's bytes. (The full PyKMIP scenario — create,
 * locate, activate, offline Create from the pool — needs the service's client operations.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { promisify } from 'node:util';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { EdgeKmipService } from '../../src/edge/edge-kmip-service.ts';
import { clientCertificate, ClientRegistry } from '../../src/endpoint/client-registry.ts';
import { KmipListener } from '../../src/endpoint/kmip-listener.ts';
import { keyBlockOf, keyMaterialOf } from '../../src/kmip/payloads.ts';
import { ObjectType } from '../../src/kmip/tables.generated.ts';
import { createLogger, silentLogger } from '../../src/log.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { startDevServer } from '../helpers/dev-server.ts';
import { testPki } from './endpoint-fixture.ts';

const SCRIPT = `
import sys, json
from kmip.pie.client import ProxyKmipClient
from kmip import enums
port, ca, cert, key, uid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
out = {}
for name, version in [('1.0', enums.KMIPVersion.KMIP_1_0), ('1.2', enums.KMIPVersion.KMIP_1_2), ('1.4', enums.KMIPVersion.KMIP_1_4)]:
    with ProxyKmipClient(hostname='127.0.0.1', port=port, cert=cert, key=key, ca=ca, config_file='/dev/null', kmip_version=version) as c:
        out[name] = c.get(uid).value.hex()
print(json.dumps(out))
`;

let dev: Awaited<ReturnType<typeof startDevServer>>;
let agent: AgentCore;
let client: KmipClient;
let listener: KmipListener;
let uid: string;
let files: { ca: string; cert: string; key: string };
const logs: Record<string, unknown>[] = [];
before(async () => {
  dev = await startDevServer();
  client = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
  uid = await client.create(ObjectType.SymmetricKey, aesKey('cartridge-A00042'));
  await client.activate(uid);
  agent = await AgentCore.open({ data: mkdtempSync(join(tmpdir(), 'kmip-edge-pykmip-door-')), client });
  const pki = testPki();
  const registry = new ClientRegistry(agent.store);
  await registry.add('lib-1', clientCertificate(new X509Certificate(pki.library.cert)), { keys: [{ name: 'cartridge-A00042' }] });
  listener = await KmipListener.start({ host: '127.0.0.1', port: 0, ca: pki.ca.cert, cert: pki.endpoint.cert, key: pki.endpoint.key, clients: registry, handler: new EdgeKmipService(agent, agent.store, silentLogger), log: createLogger({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }) });
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-pykmip-door-pki-'));
  const write = (name: string, bytes: Buffer) => (writeFileSync(join(dir, name), bytes), join(dir, name));
  files = { ca: write('ca.pem', pki.ca.cert), cert: write('lib.pem', pki.library.cert), key: write('lib.key', pki.library.key) };
});
after(async () => {
  await listener?.close();
  await agent?.close();
  await client?.close();
  await dev?.stop();
});

it("PyKMIP's client, as the tape library, gets its key through the endpoint at KMIP 1.0, 1.2 and 1.4: the key server's bytes", async () => {
  assert.ok(existsSync('/usr/bin/python3'), 'needs /usr/bin/python3 with python3-pykmip (sudo scripts/install-peers.sh)');
  const expected = toHex(keyMaterialOf(keyBlockOf((await client.get(uid)).object)));
  // Asynchronously: the endpoint runs in this process and must keep answering meanwhile.
  const run = await promisify(execFile)('/usr/bin/python3', ['-c', SCRIPT, String(listener.port), files.ca, files.cert, files.key, uid], { encoding: 'utf8', timeout: 60_000 });
  assert.deepEqual(JSON.parse(run.stdout), { '1.0': expected, '1.2': expected, '1.4': expected });
  assert.deepEqual(listener.counts.requests(), [{ operation: 'Get', result: 'Success', count: 3 }]);
  assert.equal(listener.counts.connections.accepted, 3);
  // What PyKMIP's defaults negotiate with the endpoint's default list (for the record: old libraries are like it).
  process.stdout.write(`PyKMIP's client negotiated: ${[...new Set(logs.filter((line) => line.event === 'kmip_client_connected').map((line) => line.tls))].join(', ')}\n`);
});
