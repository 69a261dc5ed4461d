/**
 * A real PyKMIP 0.10 server on loopback for interop tests, started with the shared script
 * (`../shared/interop/pykmip-upstream.sh`). There is no fallback: without PyKMIP the tests fail
 * with the reason (install it with `sudo scripts/install-peers.sh`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TlsEndpoint } from '../../src/net/tls-options.ts';
import { freePort } from '../../src/bench/free-port.ts';

const SCRIPT = fileURLToPath(new URL('../../../shared/interop/pykmip-upstream.sh', import.meta.url));

export interface PyKmipServer {
  dir: string;
  endpoint: TlsEndpoint;
  stop(): void;
}

export async function startPyKmip(): Promise<PyKmipServer> {
  if (!existsSync(SCRIPT)) throw new Error(`${SCRIPT} is missing: the shared/ folder must sit beside the repository`);
  if (!existsSync('/usr/bin/pykmip-server')) throw new Error('PyKMIP is not installed: run sudo scripts/install-peers.sh (Debian python3-pykmip)');
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-pykmip-'));
  const port = await freePort();
  const output = execFileSync('bash', [SCRIPT, 'start', dir, String(port)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  const vars = Object.fromEntries(output.trim().split('\n').map((line) => line.split('=', 2) as [string, string]));
  return {
    dir,
    endpoint: {
      host: vars.PYKMIP_HOST!,
      port: Number(vars.PYKMIP_PORT),
      ca: readFileSync(vars.PYKMIP_CA!),
      cert: readFileSync(vars.PYKMIP_CLIENT_CERT!),
      key: readFileSync(vars.PYKMIP_CLIENT_KEY!),
    },
    stop: () => void execFileSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore', timeout: 30_000 }),
  };
}
