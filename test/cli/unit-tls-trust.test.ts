/**
 * The agent as the systemd unit runs it (deploy/kmip-edge.service: its `Environment=` lines, PATH
 * and LANG, nothing else), which sets NODE_OPTIONS=--use-openssl-ca (issue #15 cold start: Node's
 * built-in root list is not parsed at the first TLS context). Under it the upstream is still
 * verified against the configured CA only: the development server's certificate (its CA given)
 * answers, "online"; a TLS server on the same address whose certificate is from another CA is
 * refused before any KMIP request, "offline" with the verification error logged. Real processes:
 * the built CLI, `kmip-edge dev-server`, a node:tls server.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:tls';
import { join } from 'node:path';
import { it } from 'node:test';
import { serviceEnvironment, unitEnvironment } from '../../src/bench/footprint-bench.ts';
import { ROOT } from '../helpers/cli.ts';
import { TestCa } from '../helpers/certificates.ts';
import { spawnCli, stopCli, type CliProcess } from '../helpers/cli-process.ts';
import { startKeyServer, terminate, upstreamArgs } from '../helpers/processes.ts';


it("under the unit's environment (--use-openssl-ca) the upstream is verified against its configured CA: the right one online, another CA's certificate refused", async () => {
  const env = serviceEnvironment(unitEnvironment(readFileSync(join(ROOT, 'deploy/kmip-edge.service'), 'utf8')));
  assert.match(env.NODE_OPTIONS ?? '', /(^|\s)--use-openssl-ca(\s|$)/, 'the unit sets NODE_OPTIONS=--use-openssl-ca');
  const { kms, data, port, server } = await startKeyServer('unit-tls-trust');
  const impostor = new TestCa('not the upstream CA').issue('127.0.0.1', 'server');
  let fake: Server | undefined;
  let agent: CliProcess | undefined;
  try {
    const run = (upstreamPort: number) => spawnCli(['run', '--data', data, ...upstreamArgs(kms, upstreamPort), '--embedded-broker', '127.0.0.1:0'], { env });

    agent = run(port);
    assert.equal((await agent.firstLine()).upstream, 'online', agent.stderr);
    assert.equal(await stopCli(agent), 0);

    // Same address form, same --upstream-ca; the server's certificate is signed by another CA.
    let handshakes = 0;
    let requests = 0;
    fake = createServer({ cert: impostor.cert, key: impostor.key }, (socket) => {
      requests += 1;
      socket.destroy();
    });
    fake.on('tlsClientError', () => (handshakes += 1));
    await new Promise<void>((resolve) => fake!.listen(0, '127.0.0.1', resolve));
    agent = run((fake.address() as { port: number }).port);
    assert.equal((await agent.firstLine()).upstream, 'offline', agent.stderr);
    const offline = await agent.waitForLog((line) => line.event === 'upstream_offline', 'upstream_offline logged');
    assert.match(String(offline.reason), /^TLS with 127\.0\.0\.1:\d+ failed: the server certificate is not signed by the configured CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)$/);
    assert.equal(requests, 0, 'no KMIP request reached the impostor: the handshake was refused');
    assert.ok(handshakes > 0, 'the agent did try the impostor');
  } finally {
    await stopCli(agent);
    fake?.close();
    await terminate(server);
  }
});
