/**
 * Startup checks of certificate and key files (issue #12 §3): before the agent says it is ready,
 * every file is read and parsed, a key must belong to its certificate, certificates must be within
 * their validity dates and chain to the CA configured next to them. Without this a non-PEM file,
 * a swapped certificate and key or the wrong CA gives a ready agent whose every request fails.
 * Each problem is one line naming the file and what is wrong with it.
 */
import { isoTime } from '../iso-time.ts';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** A certificate file may carry the leaf and its intermediates; more than this is not a chain but a mistake. */
const MAX_CHAIN = 8;
/** A PEM file of certificates or a key is a few KiB; CA bundles (e.g. the system's) stay under 1 MiB. */
export const MAX_PEM_BYTES = 1024 * 1024;

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

export interface TlsFiles {
  /** What the files are for, for messages: "upstream", "push listener", "MQTT broker". */
  role: string;
  /** What the CA verifies, when not the `role` itself (`kmip`: the client's CA file verifies the KMIP server). */
  caRole?: string;
  /** Absent: the system's CAs verify the peer (e.g. a public broker); the chain is then not checked here. */
  ca?: string;
  cert?: string;
  key?: string;
}

type Read = { ok: true; text: string } | { ok: false; problem: string };

function read(path: string): Read {
  try {
    const text = readFileSync(path, 'latin1');
    if (text.length > MAX_PEM_BYTES) return { ok: false, problem: `${path}: ${text.length} bytes, more than the ${MAX_PEM_BYTES} a PEM file may have` };
    return { ok: true, text };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a folder, not a file' : (code ?? (error as Error).message);
    return { ok: false, problem: `${path}: cannot read it (${why})` };
  }
}

function blocks(text: string): { label: string; pem: string }[] {
  return [...text.matchAll(PEM_BLOCK)].map((match) => ({ label: match[1]!, pem: match[0] }));
}

/** Parses every CERTIFICATE block; a file with none (or a key where a certificate should be) is a problem. */
function certificates(path: string, text: string, what: string, problems: string[]): X509Certificate[] {
  const found = blocks(text);
  const certs = found.filter((block) => block.label === 'CERTIFICATE');
  if (certs.length === 0) {
    problems.push(found.some((block) => block.label.endsWith('PRIVATE KEY'))
      ? `${path}: holds a private key, not ${what} (certificate and key swapped?)`
      : `${path}: not a PEM certificate (no -----BEGIN CERTIFICATE----- block); expected ${what}`);
    return [];
  }
  const parsed: X509Certificate[] = [];
  for (const [index, block] of certs.entries()) {
    try {
      parsed.push(new X509Certificate(block.pem));
    } catch (error) {
      problems.push(`${path}: certificate ${index + 1} does not parse (${(error as Error).message})`);
    }
  }
  return parsed;
}

function privateKey(path: string, text: string, problems: string[]): KeyObject | undefined {
  const found = blocks(text);
  const key = found.find((block) => block.label.endsWith('PRIVATE KEY'));
  if (!key) {
    problems.push(found.some((block) => block.label === 'CERTIFICATE')
      ? `${path}: holds a certificate, not a private key (certificate and key swapped?)`
      : `${path}: not a PEM private key (no -----BEGIN … PRIVATE KEY----- block)`);
    return undefined;
  }
  try {
    return createPrivateKey(key.pem);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    problems.push(code === 'ERR_MISSING_PASSPHRASE' || key.label === 'ENCRYPTED PRIVATE KEY'
      ? `${path}: the private key is encrypted; give an unencrypted key file readable by the agent only`
      : `${path}: the private key does not parse (${(error as Error).message})`);
    return undefined;
  }
}

const subject = (cert: X509Certificate): string => cert.subject.replace(/\n/g, ', ');

function dates(path: string, cert: X509Certificate, now: Date, problems: string[]): void {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now < from) problems.push(`${path}: the certificate for ${subject(cert)} is not valid before ${isoTime(from)} (check the clock)`);
  else if (now > to) problems.push(`${path}: the certificate for ${subject(cert)} expired on ${isoTime(to)}`);
}

/** Whether `leaf` (with `intermediates` from its own file) chains to one of `roots`, each signature verified. */
function chainsTo(leaf: X509Certificate, intermediates: X509Certificate[], roots: X509Certificate[]): boolean {
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    const signedBy = (issuer: X509Certificate): boolean => current.checkIssued(issuer) && current.verify(issuer.publicKey);
    if (roots.some(signedBy)) return true;
    const next = intermediates.find((cert) => cert !== current && cert.ca && signedBy(cert));
    if (!next) return false;
    current = next;
  }
  return false;
}

/** Checks one role's CA, certificate and key files; returns one line per problem (none: all good). */
export function checkTlsFiles(files: TlsFiles, now = new Date()): string[] {
  const problems: string[] = [];
  let roots: X509Certificate[] = [];
  if (files.ca !== undefined) {
    const caFile = read(files.ca);
    if (!caFile.ok) problems.push(caFile.problem);
    else {
      const caRole = files.caRole ?? files.role;
      roots = certificates(files.ca, caFile.text, `the ${caRole} CA certificate`, problems);
      if (roots.length > 0 && !roots.some((cert) => cert.ca)) problems.push(`${files.ca}: no CA certificate in it (the ${caRole} CA must have basicConstraints CA:TRUE)`);
      for (const cert of roots) dates(files.ca, cert, now, problems);
    }
  }
  if (files.cert === undefined || files.key === undefined) return problems;
  const certFile = read(files.cert);
  const keyFile = read(files.key);
  if (!certFile.ok) problems.push(certFile.problem);
  if (!keyFile.ok) problems.push(keyFile.problem);
  const chain = certFile.ok ? certificates(files.cert, certFile.text, `the ${files.role} certificate`, problems) : [];
  const key = keyFile.ok ? privateKey(files.key, keyFile.text, problems) : undefined;
  const leaf = chain[0];
  if (!leaf) return problems;
  dates(files.cert, leaf, now, problems);
  if (key && !leaf.checkPrivateKey(key)) problems.push(`${files.key}: this private key does not belong to the certificate in ${files.cert}`);
  if (roots.length > 0 && !chainsTo(leaf, chain.slice(1), roots)) {
    problems.push(`${files.cert}: the certificate for ${subject(leaf)} (issuer ${leaf.issuer.replace(/\n/g, ', ')}) is not signed by the CA in ${files.ca}`);
  }
  return problems;
}

/** A pinned peer certificate must parse, be in date and chain to the CA that verifies that peer. */
export function checkPinnedCertificate(path: string, ca: string, role: string, now = new Date()): string[] {
  const problems: string[] = [];
  const file = read(path);
  const caFile = read(ca);
  if (!file.ok) return [file.problem];
  const [pinned] = certificates(path, file.text, `the pinned ${role} certificate`, problems);
  if (!pinned) return problems;
  dates(path, pinned, now, problems);
  if (caFile.ok) {
    const roots = certificates(ca, caFile.text, 'a CA certificate', []);
    if (roots.length > 0 && !chainsTo(pinned, [], roots)) problems.push(`${path}: the pinned ${role} certificate (${subject(pinned)}) is not signed by the CA in ${ca}, so it would never be accepted`);
  }
  return problems;
}

/** Extended Key Usage: TLS client authentication (RFC 5280 §4.2.1.12), and any purpose. */
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_PURPOSE = '2.5.29.37.0';

/**
 * A local KMIP client's certificate, as `kmip-edge client add --cert` registers it (issue #16):
 * the first certificate of the file must parse, be in date, not be a CA, and be valid for TLS
 * client authentication — the handshake would refuse it otherwise, after the operator thought
 * the client registered. Problems are one line each.
 */
export function readClientCertificate(path: string, now = new Date()): { certificate?: X509Certificate; problems: string[] } {
  const problems: string[] = [];
  const file = read(path);
  if (!file.ok) return { problems: [file.problem] };
  const [leaf] = certificates(path, file.text, "the KMIP client's certificate", problems);
  if (!leaf) return { problems };
  dates(path, leaf, now, problems);
  if (leaf.ca) problems.push(`${path}: the certificate for ${subject(leaf)} is a CA certificate; give the client's own certificate (the CA goes to run --kmip-ca)`);
  const purposes = leaf.keyUsage; // Node names the Extended Key Usage OIDs so
  if (purposes !== undefined && !purposes.includes(CLIENT_AUTH) && !purposes.includes(ANY_PURPOSE)) {
    problems.push(`${path}: the certificate for ${subject(leaf)} is not for TLS clients (its extendedKeyUsage lacks clientAuth); issue one with extendedKeyUsage=clientAuth`);
  }
  return problems.length > 0 ? { problems } : { certificate: leaf, problems };
}
