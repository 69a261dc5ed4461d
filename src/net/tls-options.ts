/**
 * TLS options for KMIP (KMIP 1.2 §10 and the Profiles' authentication suites, FACTS.md §6):
 * mutual authentication always — the client presents its certificate and verifies the server's
 * chain and name; TLS 1.2 minimum; a cipher list for old servers when configured.
 * There is deliberately no switch to turn peer verification off.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { KmipEdgeError } from '../errors.ts';

export interface TlsEndpoint {
  host: string;
  port: number;
  /** PEM of the CA(s) that sign the server certificate. */
  ca: string | Buffer;
  /** PEM of the client certificate and its key. */
  cert: string | Buffer;
  key: string | Buffer;
  /** Name to verify in the server certificate (and send as SNI); defaults to `host`. */
  serverName?: string;
  /** OpenSSL cipher list for TLS 1.2, e.g. "AES128-SHA256" for strict KMIP 1.x servers. */
  ciphers?: string;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export const KMIP_PORT = 5696;

export function tlsConnectionOptions(endpoint: TlsEndpoint): ConnectionOptions {
  const serverName = endpoint.serverName ?? endpoint.host;
  return {
    host: endpoint.host,
    port: endpoint.port,
    ca: endpoint.ca,
    cert: endpoint.cert,
    key: endpoint.key,
    minVersion: endpoint.minVersion ?? 'TLSv1.2',
    ...(endpoint.ciphers !== undefined && { ciphers: endpoint.ciphers }),
    // SNI carries host names only (RFC 6066 §3); the certificate is still checked against an IP.
    ...(isIP(serverName) === 0 && { servername: serverName }),
    rejectUnauthorized: true,
  };
}

/** Reads PEM files for an endpoint, with a clear error naming a missing or unreadable file. */
export function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new KmipEdgeError('TLS_CONFIG_INVALID', `cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** "host:port" → parts; IPv6 as "[::1]:5696". A listen address may take port 0 (`{ listen: true }`: any free port). */
export function parseHostPort(text: string, defaultPort = KMIP_PORT, options: { listen?: boolean } = {}): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(text);
  const port = match?.[3] === undefined ? defaultPort : Number(match[3]);
  if (!match || !(port >= (options.listen ? 0 : 1) && port < 65536)) throw new KmipEdgeError('CLI_USAGE', `not a HOST:PORT: ${JSON.stringify(text)}`);
  return { host: (match[1] ?? match[2])!, port };
}
