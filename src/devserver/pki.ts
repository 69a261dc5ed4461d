/**
 * The development server's certificates, made on first start in its folder with the openssl
 * command (Node cannot issue X.509 certificates by itself): a CA, a server certificate for
 * localhost/127.0.0.1, and a client certificate that is also valid as a TLS server certificate
 * for localhost/127.0.0.1, so an agent can use it for its Put/Notify listener (CLI.md).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
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

const FILES = ['ca.pem', 'ca.key', 'server.pem', 'server.key', 'client.pem', 'client.key'] as const;

function paths(dir: string): DevPki {
  return { ca: join(dir, 'ca.pem'), serverCert: join(dir, 'server.pem'), serverKey: join(dir, 'server.key'), clientCert: join(dir, 'client.pem'), clientKey: join(dir, 'client.key') };
}

/**
 * Returns the paths of the folder's certificates, creating whatever is missing. New files are
 * made in a staging folder inside `dir` and moved into place only once all of them exist, so an
 * openssl failure (or a kill) leaves no half-written PKI: the next start begins afresh.
 * `ensureDevPkiTracked` also lists what it added (the dev server removes it again if it cannot start).
 */
export function ensureDevPki(dir: string): DevPki {
  return ensureDevPkiTracked(dir).pki;
}

export function ensureDevPkiTracked(dir: string): { pki: DevPki; created: string[] } {
  const madeDir = !existsSync(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Staging folders of a start that was killed half-way hold nothing that was ever used.
  for (const entry of readdirSync(dir)) if (entry.startsWith('.pki-')) rmSync(join(dir, entry), { recursive: true, force: true });
  const pki = paths(dir);
  const haveCa = existsSync(pki.ca) && existsSync(join(dir, 'ca.key'));
  if (haveCa && existsSync(pki.serverCert) && existsSync(pki.clientCert)) return { pki, created: [] };
  const stage = mkdtempSync(join(dir, '.pki-'));
  try {
    if (haveCa) for (const name of ['ca.pem', 'ca.key']) copyFileSync(join(dir, name), join(stage, name));
    else {
      openssl(stage, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '3650', '-subj', '/CN=kmip-edge development CA',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', 'ca.key', '-out', 'ca.pem']);
      chmodSync(join(stage, 'ca.key'), 0o600);
    }
    // A new CA invalidates the certificates of the old one.
    if (!haveCa || !existsSync(pki.serverCert)) {
      issue(stage, 'server', 'localhost', `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n${SAN}\n`);
    }
    if (!haveCa || !existsSync(pki.clientCert)) {
      issue(stage, 'client', 'kmip-edge-agent', `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth,serverAuth\n${SAN}\n`);
    }
    const created: string[] = [];
    // Keys before certificates: a certificate present means its key is too.
    for (const name of [...FILES].sort((a, b) => Number(a.endsWith('.pem')) - Number(b.endsWith('.pem')))) {
      if (!existsSync(join(stage, name)) || (haveCa && name.startsWith('ca.'))) continue;
      renameSync(join(stage, name), join(dir, name));
      created.push(join(dir, name));
    }
    if (madeDir) created.push(dir);
    return { pki, created };
  } catch (error) {
    if (madeDir) rmSync(dir, { recursive: true, force: true });
    throw error;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** Removes what `ensureDevPki` created (files, then the folder if it made it and nothing else is in it). */
export function removeCreatedPki(created: readonly string[]): void {
  for (const path of created) {
    try {
      rmSync(path, { recursive: false, force: true });
    } catch {
      // the folder: only if empty
      try {
        rmdirSync(path);
      } catch {
        // something else lives there: keep it
      }
    }
  }
}
