/**
 * The agent's backup file (issue #15, `kmip-edge backup` / `restore`): every record of the
 * LevelDB store as one consistent snapshot — one iterator, which LevelDB reads from an implicit
 * snapshot, so writes made while it runs are either wholly in or wholly out — in one owner-only
 * file written atomically (durable-file.ts).
 *
 * Layout, integers big-endian:
 *   "KMIPEDGE-BACKUP1\n"  u32 n, n bytes of JSON header {createdAt, masterKey: {fingerprint, included, key?}}
 *   per record: u8 1, u32 k, k bytes key (UTF-8), u32 v, v bytes value
 *   u8 0, u32 record count
 *   32 bytes HMAC-SHA256 of all the above, under a key derived from the master key (authenticity)
 *   32 bytes SHA-256 of all the above (integrity: checkable without the master key)
 *
 * The master key is not in the file unless asked for (`included`): the key material in the
 * records is sealed under it, so a backup without it is useless to whoever steals it, and the key
 * is kept apart as the operator guide says. The header names the key by its fingerprint.
 */
import { isoTime } from '../iso-time.ts';
import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { KmipEdgeError } from '../errors.ts';
import { writeFileDurably } from './durable-file.ts';
import type { KeyValueStore } from './kv-store.ts';
import { MasterKey } from './master-key.ts';

const MAGIC = Buffer.from('KMIPEDGE-BACKUP1\n');
const DIGEST_BYTES = 32;
const AUTH_LABEL = 'kmip-edge backup authenticator v1';
/** Limits checked before anything is allocated: a backup file, a header, a record's key and value. */
export const MAX_BACKUP_BYTES = 1024 * 1024 * 1024;
const MAX_HEADER_BYTES = 4096;
export const MAX_KEY_BYTES = 4096;
export const MAX_VALUE_BYTES = 64 * 1024 * 1024;

export interface BackupHeader {
  createdAt: string;
  masterKey: { fingerprint: string; included: boolean; key?: string };
}

export interface BackupSummary {
  records: number;
  bytes: number;
  sha256: string;
  masterKey: { fingerprint: string; included: boolean };
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/** Writes the snapshot of `store` to `path` (which must not exist yet). */
export async function writeBackup(store: KeyValueStore, path: string, masterKey: MasterKey, includeMasterKey: boolean): Promise<BackupSummary> {
  const header: BackupHeader = {
    createdAt: isoTime(),
    masterKey: { fingerprint: masterKey.fingerprint(), included: includeMasterKey, ...(includeMasterKey && { key: Buffer.from(masterKey.exportBytes()).toString('hex') }) },
  };
  const hmac: Hmac = createHmac('sha256', masterKey.derive(AUTH_LABEL));
  const sha: Hash = createHash('sha256');
  let records = 0;
  let bytes = 0;
  const hashed = (chunk: Buffer): Buffer => {
    hmac.update(chunk);
    sha.update(chunk);
    bytes += chunk.length;
    return chunk;
  };
  async function* chunks(): AsyncIterable<Uint8Array> {
    const json = Buffer.from(JSON.stringify(header));
    yield hashed(Buffer.concat([MAGIC, u32(json.length), json]));
    // One iterator over the whole key space: one implicit LevelDB snapshot (issue #15.1).
    for await (const [key, value] of store.entries('')) {
      const k = Buffer.from(key);
      yield hashed(Buffer.concat([Buffer.from([1]), u32(k.length), k, u32(value.length)]));
      yield hashed(Buffer.from(value.buffer, value.byteOffset, value.length));
      records++;
    }
    yield hashed(Buffer.concat([Buffer.from([0]), u32(records)]));
    const authenticator = hmac.digest();
    sha.update(authenticator);
    bytes += DIGEST_BYTES;
    yield authenticator;
    const digest = sha.digest();
    bytes += DIGEST_BYTES;
    summaryDigest = digest.toString('hex');
    yield digest;
  }
  let summaryDigest = '';
  await writeFileDurably(path, chunks());
  return { records, bytes, sha256: summaryDigest, masterKey: { fingerprint: header.masterKey.fingerprint, included: includeMasterKey } };
}

export interface ReadBackup {
  header: BackupHeader;
  records: [string, Uint8Array][];
  sha256: string;
  /** Checks the authenticator under `masterKey`: true when this key made the backup and nothing was changed. */
  authenticates(masterKey: MasterKey): boolean;
}

const invalid = (path: string, why: string): KmipEdgeError => new KmipEdgeError('BACKUP_INVALID', `${path} is not a usable kmip-edge backup: ${why}`);

/** Reads and checks (magic, limits, SHA-256) the backup at `path`; the authenticator is checked by the caller with its key. */
export function readBackup(path: string): ReadBackup {
  const size = statSync(path).size;
  if (size > MAX_BACKUP_BYTES) throw invalid(path, `${size} bytes, over the ${MAX_BACKUP_BYTES}-byte limit`);
  const file = readFileSync(path);
  if (file.length < MAGIC.length + 4 + 5 + 2 * DIGEST_BYTES || !file.subarray(0, MAGIC.length).equals(MAGIC)) throw invalid(path, 'no kmip-edge backup header');
  const body = file.subarray(0, file.length - 2 * DIGEST_BYTES);
  const authenticator = file.subarray(body.length, body.length + DIGEST_BYTES);
  const digest = createHash('sha256').update(file.subarray(0, file.length - DIGEST_BYTES)).digest();
  if (!timingSafeEqual(digest, file.subarray(file.length - DIGEST_BYTES))) throw invalid(path, 'its SHA-256 checksum does not match (truncated or corrupted)');
  let at = MAGIC.length;
  const need = (n: number, what: string): void => {
    if (at + n > body.length) throw invalid(path, `${what} runs past the end`);
  };
  need(4, 'the header length');
  const headerBytes = body.readUInt32BE(at);
  at += 4;
  if (headerBytes > MAX_HEADER_BYTES) throw invalid(path, `a ${headerBytes}-byte header, over the ${MAX_HEADER_BYTES}-byte limit`);
  need(headerBytes, 'the header');
  let header: BackupHeader;
  try {
    header = JSON.parse(body.subarray(at, at + headerBytes).toString()) as BackupHeader;
  } catch {
    throw invalid(path, 'its header is not JSON');
  }
  if (typeof header.masterKey?.fingerprint !== 'string') throw invalid(path, 'its header names no master key');
  at += headerBytes;
  const records: [string, Uint8Array][] = [];
  for (;;) {
    need(1, 'a record');
    const tag = body[at++];
    if (tag === 0) break;
    if (tag !== 1) throw invalid(path, `record tag ${tag}`);
    need(4, 'a key length');
    const keyBytes = body.readUInt32BE(at);
    at += 4;
    if (keyBytes > MAX_KEY_BYTES) throw invalid(path, `a ${keyBytes}-byte record key, over the ${MAX_KEY_BYTES}-byte limit`);
    need(keyBytes + 4, 'a record key');
    const key = body.subarray(at, at + keyBytes).toString();
    at += keyBytes;
    const valueBytes = body.readUInt32BE(at);
    at += 4;
    if (valueBytes > MAX_VALUE_BYTES) throw invalid(path, `a ${valueBytes}-byte record value, over the ${MAX_VALUE_BYTES}-byte limit`);
    need(valueBytes, 'a record value');
    records.push([key, new Uint8Array(body.subarray(at, at + valueBytes))]);
    at += valueBytes;
  }
  need(4, 'the record count');
  const count = body.readUInt32BE(at);
  at += 4;
  if (count !== records.length || at !== body.length) throw invalid(path, `it says ${count} records and holds ${records.length}`);
  return {
    header,
    records,
    sha256: digest.toString('hex'),
    authenticates: (masterKey) => timingSafeEqual(createHmac('sha256', masterKey.derive(AUTH_LABEL)).update(body).digest(), authenticator),
  };
}
