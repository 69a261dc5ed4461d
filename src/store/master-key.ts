/**
 * Key material at rest is sealed with AES-256-GCM (node:crypto, ../aes.ts) under a local master key
 * (ARCHITECTURE.md §4 invariant 5): from KMIP_EDGE_MASTER_KEY (64 hex digits) or a file created
 * with mode 0600 on first start. The record's key is the additional data, so a sealed value
 * cannot be moved to another record.
 *
 * A rotation (`kmip-edge master-key rotate`, src/store/rotation.ts) writes the new key beside the
 * old one as `master.key.next` and re-seals record by record; until it has switched the files,
 * some records open only under the old key and some only under the new one, so nothing may load
 * the master key alone then: `load` refuses while `master.key.next` is there.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { gcmDecrypt, gcmEncrypt } from '../aes.ts';
import { KmipEdgeError } from '../errors.ts';

const NONCE_BYTES = 12;
export const MASTER_KEY_BYTES = 32;

/** The file a rotation in progress keeps the new key in, beside `path`. */
export const nextKeyPath = (path: string): string => `${path}.next`;

export class MasterKey {
  private constructor(private readonly key: Uint8Array) {}

  /** From the environment variable when set, else from `path` (created 0600 if missing). */
  static load(path: string, environment: string | undefined = process.env.KMIP_EDGE_MASTER_KEY): MasterKey {
    if (environment !== undefined) {
      if (!/^[0-9a-fA-F]{64}$/.test(environment)) throw new KmipEdgeError('MASTER_KEY_INVALID', 'KMIP_EDGE_MASTER_KEY must be 64 hex digits');
      return new MasterKey(new Uint8Array(Buffer.from(environment, 'hex')));
    }
    if (existsSync(nextKeyPath(path))) {
      throw new KmipEdgeError('MASTER_KEY_ROTATING', `a master-key rotation of ${path} was interrupted; finish it with kmip-edge master-key rotate --data ${dirname(path)} before starting the agent`);
    }
    if (!existsSync(path)) {
      const fd = openSync(path, 'wx', 0o600); // fails rather than overwrite a key created meanwhile
      try {
        writeSync(fd, randomBytes(MASTER_KEY_BYTES));
      } finally {
        closeSync(fd);
      }
    }
    return MasterKey.read(path);
  }

  /** An existing key file, checked (owner-only, 32 bytes); never creates one. */
  static read(path: string): MasterKey {
    if ((statSync(path).mode & 0o077) !== 0) throw new KmipEdgeError('MASTER_KEY_INVALID', `${path} is readable by others; chmod 600 it`);
    const key = readFileSync(path);
    if (key.length !== MASTER_KEY_BYTES) throw new KmipEdgeError('MASTER_KEY_INVALID', `${path} must hold ${MASTER_KEY_BYTES} bytes, it holds ${key.length}`);
    return new MasterKey(new Uint8Array(key));
  }

  /** A fresh random key (a rotation's next key). */
  static generate(): MasterKey {
    return new MasterKey(new Uint8Array(randomBytes(MASTER_KEY_BYTES)));
  }

  static fromBytes(bytes: Uint8Array): MasterKey {
    if (bytes.length !== MASTER_KEY_BYTES) throw new KmipEdgeError('MASTER_KEY_INVALID', `a master key is ${MASTER_KEY_BYTES} bytes, not ${bytes.length}`);
    return new MasterKey(new Uint8Array(bytes));
  }

  /**
   * Names the key without revealing it (a backup records which key its records are sealed under):
   * the first 8 bytes of HMAC-SHA256 under the key of a fixed label, as hex.
   */
  fingerprint(): string {
    return this.derive('kmip-edge master-key fingerprint v1').subarray(0, 8).toString('hex');
  }

  /** A key for another purpose (a backup's authenticator), one-way from this one: HMAC-SHA256(key, label). */
  derive(label: string): Buffer {
    return createHmac('sha256', this.key).update(label).digest();
  }

  /**
   * The raw key, for the two places that must write it: a rotation's next key file and a backup
   * made with --include-master-key. Nowhere else.
   */
  exportBytes(): Uint8Array {
    return new Uint8Array(this.key);
  }

  seal(plaintext: Uint8Array, recordKey: string): Uint8Array {
    const nonce = randomBytes(NONCE_BYTES);
    const sealed = gcmEncrypt(this.key, nonce, Buffer.from(recordKey), plaintext);
    return new Uint8Array(Buffer.concat([nonce, sealed]));
  }

  open(sealed: Uint8Array, recordKey: string): Uint8Array {
    const plaintext = this.tryOpen(sealed, recordKey);
    if (plaintext === undefined) throw new KmipEdgeError('STORE_RECORD_INVALID', `sealed value of ${recordKey} does not authenticate (wrong master key or tampered)`);
    return plaintext;
  }

  /** The plaintext, or undefined when `sealed` does not authenticate under this key (a rotation tries both keys). */
  tryOpen(sealed: Uint8Array, recordKey: string): Uint8Array | undefined {
    if (sealed.length < NONCE_BYTES + 16) throw new KmipEdgeError('STORE_RECORD_INVALID', `sealed value of ${recordKey} is too short`);
    try {
      return gcmDecrypt(this.key, sealed.subarray(0, NONCE_BYTES), Buffer.from(recordKey), sealed.subarray(NONCE_BYTES));
    } catch {
      return undefined;
    }
  }
}
