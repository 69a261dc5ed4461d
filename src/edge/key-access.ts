/**
 * Which keys a local KMIP client may see: those its allow-list names — by Unique Identifier,
 * Name or Object Group — and those it created or registered here (created-keys.ts). Any other
 * key is as if it did not exist (Item Not Found, never Permission Denied: the client must not
 * learn that it exists). The allow-list is checked by identifier first, so that a client cannot
 * make the agent fetch a key it may not see unless a rule by name or group might cover it.
 */
import type { AgentCore } from '../agent/agent-core.ts';
import type { CachedKey, KeyMetadata } from '../agent/key-cache.ts';
import { keyAllowed } from '../devices/registry.ts';
import { KmipResultError } from '../kmip/message.ts';
import { State, Tag } from '../kmip/tables.generated.ts';
import { optionalValue } from '../kmip/tree.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import type { BatchContext } from './batch.ts';
import type { CreatedKeys } from './created-keys.ts';
import type { Principal } from './principal.ts';
import { notFound, Refusal } from './refusal.ts';
import { ResultReason } from '../kmip/tables.generated.ts';

const itemNotFound = (error: unknown): boolean => error instanceof KmipResultError && error.resultReason === 'ItemNotFound';

export function isDestroyed(meta: Pick<KeyMetadata, 'state'>): boolean {
  return meta.state === State.Destroyed || meta.state === State.DestroyedCompromised;
}

/** The key an item is about: its Unique Identifier, or else the ID Placeholder (KMIP 1.2 §4 intro). */
export function uidOf(payload: TtlvItem, context: BatchContext): string {
  const uid = optionalValue(payload, Tag.UniqueIdentifier, ItemType.TextString) ?? context.placeholder;
  if (uid === undefined) throw new Refusal(ResultReason.ItemNotFound, 'no Unique Identifier and no ID Placeholder');
  return uid;
}

export class KeyAccess {
  constructor(
    private readonly agent: AgentCore,
    readonly created: CreatedKeys,
    /** Keys held in the key pool, not yet handed out: invisible to every client, whatever its allow-list says. */
    private readonly pooled: (uid: string) => boolean = () => false,
  ) {}

  /** Allowed without looking at the key: by Unique Identifier, or created by the client. */
  private async byIdentifier(principal: Principal, uid: string): Promise<boolean> {
    if (this.pooled(uid)) return false;
    return keyAllowed(principal, { uniqueIdentifier: uid, names: [], objectGroups: [] }) || (await this.created.of(principal.id)).has(uid);
  }

  /** Synchronously, for a key whose metadata is at hand (the client's created keys must have been read: `created.of`). */
  visibleNow(principal: Principal, meta: Pick<KeyMetadata, 'uniqueIdentifier' | 'names' | 'objectGroups'>): boolean {
    if (this.pooled(meta.uniqueIdentifier)) return false;
    return keyAllowed(principal, meta) || this.created.known(principal.id)?.has(meta.uniqueIdentifier) === true;
  }

  /**
   * The key, from the cache (filled from the key server on a miss), if the client may see it;
   * Item Not Found otherwise, and for a key destroyed.
   */
  async readable(principal: Principal, uid: string): Promise<CachedKey> {
    if (this.pooled(uid)) throw notFound();
    const byId = await this.byIdentifier(principal, uid);
    if (!byId && !principal.keys.some((rule) => rule.uniqueIdentifier === undefined)) throw notFound();
    let key: CachedKey;
    try {
      key = await this.agent.cache.get(uid);
    } catch (error) {
      if (itemNotFound(error)) throw notFound();
      throw error;
    }
    if ((!byId && !keyAllowed(principal, key.metadata)) || isDestroyed(key.metadata)) throw notFound();
    return key;
  }

  /**
   * Whether the client may see `uid`, without fetching its material: by identifier, else by the
   * cached names and groups, else by the names and groups the key server has (Get Attributes).
   */
  async visible(principal: Principal, uid: string): Promise<boolean> {
    if (this.pooled(uid)) return false;
    if (await this.byIdentifier(principal, uid)) return true;
    if (!principal.keys.some((rule) => rule.uniqueIdentifier === undefined)) return false;
    const cached = await this.agent.cache.cached(uid);
    if (cached) return keyAllowed(principal, cached.metadata);
    try {
      const { attributes } = await this.agent.upstream(`reading the names and groups of ${uid}`, (client) => client.getAttributes(uid, ['Name', 'Object Group']));
      const names = attributes.filter((a) => a.name === 'Name' && a.value).map((a) => optionalValue(a.value!, Tag.NameValue, ItemType.TextString) ?? '');
      const objectGroups = attributes.filter((a) => a.name === 'Object Group').map((a) => String(a.value?.value));
      return keyAllowed(principal, { uniqueIdentifier: uid, names, objectGroups });
    } catch (error) {
      if (itemNotFound(error)) return false;
      throw error;
    }
  }

  /** Item Not Found unless the client may see `uid`. */
  async mustSee(principal: Principal, uid: string): Promise<void> {
    if (!(await this.visible(principal, uid))) throw notFound();
  }
}
