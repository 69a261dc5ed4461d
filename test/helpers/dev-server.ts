import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDevPki } from '../../src/devserver/pki.ts';
import { DevKmipServer, type DevKmipServerOptions } from '../../src/devserver/server.ts';
import type { TlsEndpoint } from '../../src/net/tls-options.ts';

/** The development KMIP server in process, on a free loopback port, with its own PKI. */
export async function startDevServer(options: DevKmipServerOptions = {}): Promise<{ server: DevKmipServer; endpoint: TlsEndpoint; dir: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-dev-'));
  const pki = ensureDevPki(dir);
  const server = new DevKmipServer(pki, options);
  const port = await server.listen(0);
  return {
    server,
    dir,
    endpoint: { host: '127.0.0.1', port, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) },
    stop: () => server.close(),
  };
}
