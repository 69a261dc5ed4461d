/**
 * The local KMIP client registry (issue #16): the tape libraries and storage arrays that may use
 * the agent's KMIP endpoint (`run --kmip-listen`), each identified by the SHA-256 of its
 * certificate's SubjectPublicKeyInfo (RFC 7469 §2.4: the same for a certificate renewed with the
 * same key, different for any other key), with its allow-lists of keys (by Unique Identifier,
 * Name or Object Group) and of KMIP operations, and the templates of its offline key pool.
 *
 * Nothing in a record is secret (a fingerprint is public), so records are plain JSON under
 * CLIENT_PREFIX. A fingerprint belongs to one client at most: the listener maps a handshake's
 * certificate to exactly one principal. Writes are serialized in this instance, and the agent's
 * instance is the only writer while it runs (it holds the store; `kmip-edge client …` goes
 * through its admin socket), so the in-memory index the listener reads per request is exact.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { KmipEdgeError } from '../errors.ts';
import type { KeyRule } from '../devices/registry.ts';
import type { LocalClient, PoolTemplate } from '../edge/principal.ts';
import { CryptographicAlgorithm, Operation } from '../kmip/tables.generated.ts';
import { Lanes } from '../lanes.ts';
import type { KeyValueStore } from '../store/kv-store.ts';

export const CLIENT_PREFIX = 'client/registry/';

const CLIENT_ID = /^[A-Za-z0-9._-]{1,64}$/;
const SPKI_SHA256 = /^[0-9a-f]{64}$/;

/**
 * Operations a local client may be allowed, by KMIP XML name: what the edge KMIP service serves
 * (issue #16: served from the cache, and the writes it forwards upstream).
 */
export const CLIENT_OPERATIONS = [
  'DiscoverVersions', 'Query', 'Locate', 'Get', 'GetAttributes', 'GetAttributeList', 'Check', 'GetUsageAllocation', 'ObtainLease',
  'Create', 'Register', 'Activate', 'AddAttribute', 'ModifyAttribute', 'DeleteAttribute', 'Revoke', 'Destroy',
] as const satisfies readonly (keyof typeof Operation)[];
export type ClientOperation = (typeof CLIENT_OPERATIONS)[number];

/**
 * The default for a tape library (KMIP Usage Guide §4.4, the storage-array and tape profiles):
 * find its keys, fetch them, make a key for a new cartridge, activate it and label it (the
 * barcode as an attribute). Not Register (importing foreign material), nor Revoke, Destroy or
 * Delete Attribute (taking a key away is the key server administrator's decision), nor Get
 * Usage Allocation (allocations are for devices that count usage).
 */
export const DEFAULT_CLIENT_OPERATIONS: readonly ClientOperation[] = [
  'DiscoverVersions', 'Query', 'Locate', 'Get', 'GetAttributes', 'GetAttributeList', 'Check', 'ObtainLease',
  'Create', 'Activate', 'AddAttribute', 'ModifyAttribute',
];

/** A pool of more keys than this per template is a typo, not a plan (each is a key made upstream ahead of need). */
export const MAX_POOL_SIZE = 10_000;
const MAX_TEMPLATES = 16;
const MAX_RULES = 256;
const MAX_TEXT = 256;

interface StoredClient {
  id: string;
  spkiSha256: string;
  keys: KeyRule[];
  operations: ClientOperation[];
  pool: PoolTemplate[];
  /** The certificate's subject when it was registered, for `client list` (not used to authenticate). */
  subject?: string;
}

/** What `client list` shows of a client; the registry's principal is LocalClient. */
export type ClientRecord = LocalClient & { subject?: string };

export interface ClientChange {
  keys?: KeyRule[];
  operations?: readonly string[];
  pool?: PoolTemplate[];
  /** A new certificate (re-keyed client): its fingerprint replaces the old one. */
  certificate?: ClientCertificate;
}

/** The identity a certificate gives a client. */
export interface ClientCertificate {
  spkiSha256: string;
  subject: string;
}

/** SHA-256 (lower-case hex) of a certificate's DER SubjectPublicKeyInfo, and its subject. */
export function clientCertificate(certificate: X509Certificate): ClientCertificate {
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
  return { spkiSha256: createHash('sha256').update(spki).digest('hex'), subject: certificate.subject.replace(/\n/g, ', ') };
}

function invalid(message: string): KmipEdgeError {
  return new KmipEdgeError('CLIENT_INVALID', message);
}

function checkRules(keys: readonly KeyRule[]): void {
  if (keys.length > MAX_RULES) throw invalid(`at most ${MAX_RULES} key rules`);
  for (const rule of keys) {
    const values = [rule.uniqueIdentifier, rule.name, rule.objectGroup].filter((v) => v !== undefined);
    if (values.length !== 1 || values.some((v) => typeof v !== 'string' || v.length === 0 || v.length > MAX_TEXT)) {
      throw invalid(`a key rule names one of a Unique Identifier, a Name or an Object Group, 1-${MAX_TEXT} characters`);
    }
  }
}

function checkOperations(operations: readonly string[]): ClientOperation[] {
  const unknown = operations.find((op) => !(CLIENT_OPERATIONS as readonly string[]).includes(op));
  if (unknown !== undefined) throw invalid(`--operation ${unknown}: one of ${CLIENT_OPERATIONS.join(', ')}`);
  return [...new Set(operations)] as ClientOperation[];
}

function checkPool(pool: readonly PoolTemplate[]): void {
  if (pool.length > MAX_TEMPLATES) throw invalid(`at most ${MAX_TEMPLATES} pool templates`);
  const seen = new Set<string>();
  for (const template of pool) {
    if (!Object.values(CryptographicAlgorithm).includes(template.algorithm as never)) throw invalid(`pool: ${template.algorithm} is not a Cryptographic Algorithm`);
    if (!(Number.isInteger(template.length) && template.length > 0 && template.length <= 16384)) throw invalid('pool: the length is a number of bits, 1-16384');
    if (!(Number.isInteger(template.size) && template.size >= 1 && template.size <= MAX_POOL_SIZE)) throw invalid(`pool: the size is a number of keys, 1-${MAX_POOL_SIZE}`);
    if (template.usageMask !== undefined && !(Number.isInteger(template.usageMask) && template.usageMask > 0 && template.usageMask <= 0xffffffff)) throw invalid('pool: the usage mask is a Cryptographic Usage Mask');
    if (template.objectGroup !== undefined && (template.objectGroup.length === 0 || template.objectGroup.length > MAX_TEXT)) throw invalid(`pool: the object group is 1-${MAX_TEXT} characters`);
    const key = `${template.algorithm}/${template.length}/${template.usageMask ?? ''}/${template.objectGroup ?? ''}`;
    if (seen.has(key)) throw invalid('pool: the same template twice (one size per algorithm, length and group)');
    seen.add(key);
  }
}

function toClient(stored: StoredClient): ClientRecord {
  return { kind: 'client', id: stored.id, spkiSha256: stored.spkiSha256, keys: stored.keys, operations: stored.operations, pool: stored.pool, ...(stored.subject !== undefined && { subject: stored.subject }) };
}

export class ClientRegistry {
  /** All clients by id and by fingerprint, loaded once; kept in step with every write of this instance. */
  private index: Promise<{ byId: Map<string, ClientRecord>; bySpki: Map<string, ClientRecord> }> | undefined;
  /** The index once loaded: the listener's per-request look-up is then a Map get, no promise. */
  private loaded: { byId: Map<string, ClientRecord>; bySpki: Map<string, ClientRecord> } | undefined;
  private readonly writes = new Lanes();

  constructor(readonly store: KeyValueStore) {}

  private load() {
    this.index ??= (async () => {
      const byId = new Map<string, ClientRecord>();
      const bySpki = new Map<string, ClientRecord>();
      for await (const [, raw] of this.store.entries(CLIENT_PREFIX)) {
        const client = toClient(JSON.parse(Buffer.from(raw).toString()) as StoredClient);
        byId.set(client.id, client);
        bySpki.set(client.spkiSha256, client);
      }
      return (this.loaded = { byId, bySpki });
    })();
    return this.index;
  }

  /** Registers a client; refuses an id already in use and a certificate (key) another client has. */
  add(id: string, certificate: ClientCertificate, options: { keys?: KeyRule[]; operations?: readonly string[]; pool?: PoolTemplate[] } = {}): Promise<ClientRecord> {
    if (!CLIENT_ID.test(id)) return Promise.reject(invalid(`client id ${JSON.stringify(id)} is not 1-64 of [A-Za-z0-9._-]`));
    return this.writes.run('', async () => {
      const index = await this.load();
      if (index.byId.has(id)) throw new KmipEdgeError('CLIENT_EXISTS', `client ${id} is already registered; change it with kmip-edge client update --id ${id}`);
      this.checkFingerprint(index.bySpki, certificate, undefined);
      const stored: StoredClient = {
        id, spkiSha256: certificate.spkiSha256, keys: options.keys ?? [],
        operations: checkOperations(options.operations ?? DEFAULT_CLIENT_OPERATIONS), pool: options.pool ?? [], subject: certificate.subject,
      };
      checkRules(stored.keys);
      checkPool(stored.pool);
      return this.put(index, stored, undefined);
    });
  }

  /**
   * Replaces the lists given (what is not given stays) and, with a certificate, the fingerprint
   * (a re-keyed client: connections with the old key are refused from then on). Undefined when
   * there is no such client.
   */
  update(id: string, change: ClientChange): Promise<ClientRecord | undefined> {
    return this.writes.run('', async () => {
      const index = await this.load();
      const before = index.byId.get(id);
      if (!before) return undefined;
      if (change.certificate) this.checkFingerprint(index.bySpki, change.certificate, id);
      const stored: StoredClient = {
        id,
        spkiSha256: change.certificate?.spkiSha256 ?? before.spkiSha256,
        keys: change.keys ?? [...before.keys],
        operations: change.operations ? checkOperations(change.operations) : [...before.operations] as ClientOperation[],
        pool: change.pool ?? before.pool,
        ...((change.certificate?.subject ?? before.subject) !== undefined && { subject: change.certificate?.subject ?? before.subject }),
      };
      checkRules(stored.keys);
      checkPool(stored.pool);
      return this.put(index, stored, before);
    });
  }

  remove(id: string): Promise<boolean> {
    return this.writes.run('', async () => {
      const index = await this.load();
      const before = index.byId.get(id);
      if (!before) return false;
      await this.store.commit([{ type: 'del', key: CLIENT_PREFIX + id }]);
      index.byId.delete(id);
      index.bySpki.delete(before.spkiSha256);
      return true;
    });
  }

  async get(id: string): Promise<ClientRecord | undefined> {
    return (await this.load()).byId.get(id);
  }

  /** The client whose certificate has this SubjectPublicKeyInfo digest (what the listener asks on each connection and request). */
  bySpki(spkiSha256: string): ClientRecord | undefined | Promise<ClientRecord | undefined> {
    if (this.loaded) return this.loaded.bySpki.get(spkiSha256);
    return this.load().then((index) => index.bySpki.get(spkiSha256));
  }

  async list(): Promise<ClientRecord[]> {
    return [...(await this.load()).byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private checkFingerprint(bySpki: Map<string, ClientRecord>, certificate: ClientCertificate, self: string | undefined): void {
    if (!SPKI_SHA256.test(certificate.spkiSha256)) throw new TypeError('spkiSha256: 64 lower-case hex digits');
    const owner = bySpki.get(certificate.spkiSha256);
    if (owner && owner.id !== self) throw new KmipEdgeError('CLIENT_EXISTS', `this certificate's key (SPKI sha256 ${certificate.spkiSha256}) is already client ${owner.id}'s; one key, one client`);
  }

  /** Durable first, then the index: a failed commit changes nothing. */
  private async put(index: { byId: Map<string, ClientRecord>; bySpki: Map<string, ClientRecord> }, stored: StoredClient, before: ClientRecord | undefined): Promise<ClientRecord> {
    await this.store.commit([{ type: 'put', key: CLIENT_PREFIX + stored.id, value: new Uint8Array(Buffer.from(JSON.stringify(stored))) }]);
    const client = toClient(stored);
    if (before) index.bySpki.delete(before.spkiSha256);
    index.byId.set(client.id, client);
    index.bySpki.set(client.spkiSha256, client);
    return client;
  }
}

/**
 * `--pool ALG-BITS[:GROUP]=N` (e.g. `AES-256:tape-lib-1=20`): keep N keys of that algorithm and
 * length (in that Object Group) made upstream ahead of need, for Create while offline.
 */
export function parsePoolTemplate(text: string): PoolTemplate {
  const match = /^([^:=]+)-(\d+)(?::([^=]+))?=(\d+)$/.exec(text);
  if (!match) throw invalid(`--pool ${JSON.stringify(text)}: expected ALG-BITS[:GROUP]=N, e.g. AES-256:tape-lib-1=20`);
  const fold = (name: string): string => name.toLowerCase().replace(/[-_\s]/g, '');
  const name = Object.keys(CryptographicAlgorithm).find((candidate) => fold(candidate) === fold(match[1]!));
  if (name === undefined) throw invalid(`--pool ${JSON.stringify(text)}: unknown algorithm ${JSON.stringify(match[1])} (e.g. AES, HMAC-SHA256)`);
  const template: PoolTemplate = { algorithm: CryptographicAlgorithm[name as keyof typeof CryptographicAlgorithm], length: Number(match[2]), size: Number(match[4]) };
  if (match[3] !== undefined) template.objectGroup = match[3];
  checkPool([template]);
  return template;
}

/** How `client list` and `client add` write a template back: the `--pool` form. */
export function formatPoolTemplate(template: PoolTemplate): string {
  const name = Object.entries(CryptographicAlgorithm).find(([, value]) => value === template.algorithm)?.[0].replace(/_/g, '-') ?? String(template.algorithm);
  return `${name}-${template.length}${template.objectGroup !== undefined ? `:${template.objectGroup}` : ''}=${template.size}`;
}
