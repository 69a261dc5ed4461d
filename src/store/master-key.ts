/**
 * Key material at rest is sealed with AES-256-GCM (@noble/ciphers) under a local master key
 * (ARCHITECTURE.md §4 invariant 5): from KMIP_EDGE_MASTER_KEY (64 hex digits) or a file created
 * with mode 0600 on first start. The record's key is the additional data, so a sealed value
 * cannot be moved to another record.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { gcm } from '@noble/ciphers/aes.js';
import { KmipEdgeError } from '../errors.ts';

const NONCE_BYTES = 12;

export class MasterKey {
  private constructor(private readonly key: Uint8Array) {}

  /** From the environment variable when set, else from `path` (created 0600 if missing). */
  static load(path: string, environment: string | undefined = process.env.KMIP_EDGE_MASTER_KEY): MasterKey {
    if (environment !== undefined) {
      if (!/^[0-9a-fA-F]{64}$/.test(environment)) throw new KmipEdgeError('MASTER_KEY_INVALID', 'KMIP_EDGE_MASTER_KEY must be 64 hex digits');
      return new MasterKey(new Uint8Array(Buffer.from(environment, 'hex')));
    }
    if (!existsSync(path)) {
      const fd = openSync(path, 'wx', 0o600); // fails rather than overwrite a key created meanwhile
      try {
        writeSync(fd, randomBytes(32));
      } finally {
        closeSync(fd);
      }
    }
    if ((statSync(path).mode & 0o077) !== 0) throw new KmipEdgeError('MASTER_KEY_INVALID', `${path} is readable by others; chmod 600 it`);
    const key = readFileSync(path);
    if (key.length !== 32) throw new KmipEdgeError('MASTER_KEY_INVALID', `${path} must hold 32 bytes, it holds ${key.length}`);
    return new MasterKey(new Uint8Array(key));
  }

  seal(plaintext: Uint8Array, recordKey: string): Uint8Array {
    const nonce = randomBytes(NONCE_BYTES);
    const sealed = gcm(this.key, nonce, Buffer.from(recordKey)).encrypt(plaintext);
    return new Uint8Array(Buffer.concat([nonce, sealed]));
  }

  open(sealed: Uint8Array, recordKey: string): Uint8Array {
    if (sealed.length < NONCE_BYTES + 16) throw new KmipEdgeError('STORE_RECORD_INVALID', `sealed value of ${recordKey} is too short`);
    try {
      return gcm(this.key, sealed.subarray(0, NONCE_BYTES), Buffer.from(recordKey)).decrypt(sealed.subarray(NONCE_BYTES));
    } catch (error) {
      throw new KmipEdgeError('STORE_RECORD_INVALID', `sealed value of ${recordKey} does not authenticate (wrong master key or tampered)`, { cause: error });
    }
  }
}
