/**
 * The development server as a process of its own (`kmip-edge dev-server --store leveldb` from the
 * built bundle) on a fixed port, so that a test can stop it (SIGKILL: an outage, as the WAN link
 * of a branch site fails) and start it again with the same objects; and an agent core whose
 * upstream it is, with a breaker that opens at the first failure.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentCore, type AgentCoreOptions } from '../../src/agent/agent-core.ts';
import { CircuitBreaker } from '../../src/agent/circuit-breaker.ts';
import { freePort } from '../../src/bench/free-port.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import type { TlsEndpoint } from '../../src/net/tls-options.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { adminClient, exited, startProcess } from './processes.ts';

export interface KeyServerProcess {
  /** The server's folder: its PKI (ca.pem, client.pem, client.key) and objects. */
  kms: string;
  port: number;
  endpoint(): TlsEndpoint;
  running(): boolean;
  start(): Promise<void>;
  /** SIGKILL, as an outage: the objects are on disk (LevelDB). */
  stop(): Promise<void>;
  /** An administrator's KMIP 1.2 client of the server, straight (not through the agent); closed by `use`'s end. */
  admin<T>(use: (client: KmipClient) => Promise<T>): Promise<T>;
}

export async function keyServerProcess(name: string): Promise<KeyServerProcess> {
  const kms = join(mkdtempSync(join(tmpdir(), `kmip-edge-${name}-`)), 'kms');
  const port = await freePort();
  let child: ChildProcess | undefined;
  const server: KeyServerProcess = {
    kms,
    port,
    endpoint: () => ({ host: '127.0.0.1', port, ca: readFileSync(join(kms, 'ca.pem')), cert: readFileSync(join(kms, 'client.pem')), key: readFileSync(join(kms, 'client.key')) }),
    running: () => child !== undefined,
    async start() {
      if (child) return;
      child = (await startProcess(['dev-server', '--port', String(port), '--dir', kms, '--store', 'leveldb'])).child;
    },
    async stop() {
      if (!child) return;
      const gone = exited(child);
      child.kill('SIGKILL');
      await gone;
      child = undefined;
    },
    async admin(use) {
      const client = adminClient(kms, port);
      try {
        return await use(client);
      } finally {
        await client.close();
      }
    },
  };
  await server.start();
  return server;
}

/** An agent core on a fresh data folder whose upstream is `server`: no retries, short timeouts, the breaker open at the first failure. */
export async function openAgentOn(server: KeyServerProcess, options: Partial<AgentCoreOptions> = {}): Promise<{ agent: AgentCore; data: string; close(): Promise<void> }> {
  const data = options.data ?? mkdtempSync(join(tmpdir(), 'kmip-edge-pool-agent-'));
  const client = new KmipClient({ transport: new TlsPool(server.endpoint(), { minBackoffMs: 10, maxBackoffMs: 100 }), version: { major: 1, minor: 2 }, retries: 0, timeoutMs: 2000 });
  const agent = await AgentCore.open({ data, client, breaker: new CircuitBreaker(1, 200), ...options });
  return { agent, data, close: async () => { await agent.close(); await client.close(); } };
}
