/** Test PKI made with the openssl command: CAs, server and client certificates, expired ones. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Issued {
  cert: Buffer;
  key: Buffer;
}

export class TestCa {
  readonly dir: string;
  readonly cert: Buffer;

  /** A new CA, or with `existingDir` the one whose ca.pem and ca.key are there (e.g. PyKMIP's). */
  constructor(readonly name: string, existingDir?: string) {
    this.dir = existingDir ?? mkdtempSync(join(tmpdir(), 'kmip-edge-pki-'));
    if (existingDir === undefined) this.openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '30', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', 'ca.key', '-out', 'ca.pem']);
    this.cert = readFileSync(join(this.dir, 'ca.pem'));
  }

  /** A certificate for `cn`; `days` of -1 gives one that has already expired. */
  issue(cn: string, usage: 'server' | 'client' | 'server+client', days = 30): Issued {
    const base = `${usage}-${cn}-${days}`.replace(/[^\w.-]/g, '_');
    this.openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${base}.key`, '-out', `${base}.csr`]);
    const extensions = usage === 'server+client'
      ? 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n'
      : usage === 'server'
      ? 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n'
      : 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';
    writeFileSync(join(this.dir, `${base}.ext`), extensions);
    this.openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAserial', 'test-ca.srl', '-CAcreateserial', '-sha256', '-days', String(days), '-extfile', `${base}.ext`, '-out', `${base}.pem`]);
    return { cert: readFileSync(join(this.dir, `${base}.pem`)), key: readFileSync(join(this.dir, `${base}.key`)) };
  }

  private openssl(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: 'ignore' });
  }
}
