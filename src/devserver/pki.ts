/**
 * The development server's certificates, made on first start in its folder with the openssl
 * command (Node cannot issue X.509 certificates by itself): a CA, a server certificate for
 * localhost/127.0.0.1, and a client certificate that is also valid as a TLS server certificate
 * for localhost/127.0.0.1, so an agent can use it for its Put/Notify listener (CLI.md).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KmipEdgeError } from '../errors.ts';

export interface DevPki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

const SAN = 'subjectAltName=DNS:localhost,IP:127.0.0.1';

function openssl(dir: string, args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    throw new KmipEdgeError('DEV_PKI_FAILED', `openssl ${args[0]} failed in ${dir}: ${String((error as { stderr?: Buffer }).stderr ?? error).trim().split('\n')[0]}`);
  }
}

function issue(dir: string, name: string, cn: string, extensions: string): void {
  openssl(dir, ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAserial', 'ca.srl', '-CAcreateserial', '-days', '825', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.pem`]);
  unlinkSync(join(dir, `${name}.csr`));
  unlinkSync(join(dir, `${name}.ext`));
  chmodSync(join(dir, `${name}.key`), 0o600);
}

/** Returns the paths of the folder's certificates, creating whatever is missing. */
export function ensureDevPki(dir: string): DevPki {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pki: DevPki = {
    ca: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
  };
  if (!existsSync(pki.ca)) {
    openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '3650', '-subj', '/CN=kmip-edge development CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', 'ca.key', '-out', 'ca.pem']);
    chmodSync(join(dir, 'ca.key'), 0o600);
    for (const stale of [pki.serverCert, pki.clientCert]) if (existsSync(stale)) unlinkSync(stale);
  }
  if (!existsSync(pki.serverCert)) {
    issue(dir, 'server', 'localhost', `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n${SAN}\n`);
  }
  if (!existsSync(pki.clientCert)) {
    issue(dir, 'client', 'kmip-edge-agent', `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth,serverAuth\n${SAN}\n`);
  }
  return pki;
}
