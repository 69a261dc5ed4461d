/**
 * A local KMIP client's writes (issue #16): Create, Register, Activate, Add / Modify / Delete
 * Attribute, Revoke and Destroy are forwarded to the key server (agent.upstream, behind the
 * circuit breaker) as the client sent them — the ID Placeholder resolved here — and the cache
 * updated from the answer. A key the client creates or registers is recorded as its own
 * (created-keys.ts) before the answer. While the key server is unreachable, a Create of a
 * symmetric key is answered from the key pool (OfflineCreator); every other write fails with
 * Operation Failed, saying that the key server is unreachable.
 */
import type { AgentCore } from '../agent/agent-core.ts';
import { readAttribute, type Attribute } from '../kmip/attributes.ts';
import { ObjectType, Operation, ResultReason, Tag } from '../kmip/tables.generated.ts';
import { childrenOf, findChild, findChildren, optionalValue, requiredValue } from '../kmip/tree.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import type { Logger } from '../log.ts';
import { enumeration, structure, textString } from '../ttlv/build.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import type { BatchContext } from './batch.ts';
import { KeyAccess, uidOf } from './key-access.ts';
import type { OfflineCreateRequest, OfflineCreator, Principal } from './principal.ts';
import { isUnreachable, Refusal } from './refusal.ts';

/** Writes about one existing key, forwarded with its Unique Identifier. */
export const KEY_WRITES: ReadonlySet<number> = new Set([
  Operation.Activate, Operation.AddAttribute, Operation.ModifyAttribute, Operation.DeleteAttribute, Operation.Revoke, Operation.Destroy,
]);

/** The Template-Attribute fields a pool template matches on (PoolTemplate): the pooled key has them already. */
const TEMPLATE_FIELDS = new Set(['Cryptographic Algorithm', 'Cryptographic Length', 'Cryptographic Usage Mask', 'Object Group']);

export class ClientWrites {
  /** Cache fills started after a Create or Register, by key: a later write of the key waits for its fill. */
  private readonly fills = new Map<string, Promise<void>>();

  constructor(
    private readonly agent: AgentCore,
    private readonly access: KeyAccess,
    private readonly log: Logger,
    private readonly offlineCreator: OfflineCreator | undefined,
  ) {}

  /** The Response Payload children of `operation` sent upstream as they are. */
  private async forward(operation: number, children: TtlvItem[]): Promise<TtlvItem[]> {
    const name = enumerationText(Tag.Operation, operation);
    return childrenOf(await this.agent.upstream(`a ${name} for a local KMIP client`, (client) => client.call(operation, children)));
  }

  async create(principal: Principal, payload: TtlvItem, context: BatchContext): Promise<TtlvItem[]> {
    let answer: TtlvItem[];
    try {
      answer = await this.forward(Operation.Create, childrenOf(payload));
    } catch (error) {
      // Unreachable means nothing was sent (a Create sent without an answer is KMIP_OUTCOME_UNKNOWN: no pooled key then).
      if (!isUnreachable(error)) throw error;
      return this.createOffline(principal, payload, context);
    }
    return this.created(principal, answer, context);
  }

  async register(principal: Principal, payload: TtlvItem, context: BatchContext): Promise<TtlvItem[]> {
    return this.created(principal, await this.forward(Operation.Register, childrenOf(payload)), context);
  }

  /** A key made at the key server for the client: its own from now on (durably, before the answer), the placeholder, and fetched into the cache. */
  private async created(principal: Principal, answer: TtlvItem[], context: BatchContext): Promise<TtlvItem[]> {
    const uid = requiredValue(structure(Tag.ResponsePayload, answer), Tag.UniqueIdentifier, ItemType.TextString);
    await this.access.created.add(principal.id, uid);
    context.placeholder = uid;
    const fill = this.agent.cache.get(uid).then(() => undefined, () => undefined).finally(() => this.fills.delete(uid));
    this.fills.set(uid, fill);
    return answer;
  }

  /**
   * Create while the key server is unreachable (issue #16): a pooled key matching the template
   * (algorithm, length, usage mask, object group), with the other attributes — Name, `x-`
   * attributes, … — applied locally and written upstream later by the pool's outbox; activated
   * when the next item of the batch is an Activate of it (placeholder) or the Activation Date is
   * not in the future.
   */
  private async createOffline(principal: Principal, payload: TtlvItem, context: BatchContext): Promise<TtlvItem[]> {
    const noPooledKey = new Refusal(ResultReason.GeneralFailure, 'the key server is unreachable and no pooled key matches this Create');
    if (!this.offlineCreator || optionalValue(payload, Tag.ObjectType, ItemType.Enumeration) !== ObjectType.SymmetricKey) throw noPooledKey;
    const template = findChild(payload, Tag.TemplateAttribute);
    const attributes = template ? findChildren(template, Tag.Attribute).map(readAttribute) : [];
    const valueOf = (name: string) => attributes.find((a) => a.name === name)?.value?.value;
    const number = (name: string) => { const v = valueOf(name); return typeof v === 'number' ? v : undefined; };
    const objectGroup = valueOf('Object Group');
    const activationDate = valueOf('Activation Date');
    const activatedNext = context.next?.operation === Operation.Activate && optionalValue(context.next.payload, Tag.UniqueIdentifier, ItemType.TextString) === undefined;
    const activate = activatedNext || (typeof activationDate === 'bigint' && activationDate <= BigInt(Math.floor(Date.now() / 1000)));
    const request: OfflineCreateRequest = {
      clientId: principal.id,
      algorithm: number('Cryptographic Algorithm'),
      length: number('Cryptographic Length'),
      usageMask: number('Cryptographic Usage Mask'),
      objectGroup: typeof objectGroup === 'string' ? objectGroup : undefined,
      attributes: attributes.filter((a) => !TEMPLATE_FIELDS.has(a.name) && !(activate && a.name === 'Activation Date')),
      activate,
      alongside: (taken) => [this.access.created.record(principal.id, taken)],
    };
    const uid = await this.offlineCreator.takeOffline(request);
    if (uid === undefined) throw noPooledKey;
    await this.access.created.ensure(principal.id, uid); // in case the pool did not write `alongside`
    context.placeholder = uid;
    if (activatedNext) context.activatedOffline.add(uid);
    this.log.info({ event: 'kmip_offline_create', client: principal.id, uid, attributes: request.attributes.map((a) => a.name), activate }, 'Create answered from the key pool: the key server is unreachable');
    return [enumeration(Tag.ObjectType, ObjectType.SymmetricKey), textString(Tag.UniqueIdentifier, uid)];
  }

  /** Activate, Add / Modify / Delete Attribute, Revoke, Destroy of a key the client may see; the cache follows. */
  async keyWrite(principal: Principal, operation: number, payload: TtlvItem, context: BatchContext): Promise<TtlvItem[]> {
    const uid = uidOf(payload, context);
    // The pool activated it with its Create (createOffline): done, nothing to send.
    if (operation === Operation.Activate && context.activatedOffline.has(uid)) return [textString(Tag.UniqueIdentifier, uid)];
    await this.access.mustSee(principal, uid);
    const children = childrenOf(payload);
    const answer = await this.forward(operation, children.some((c) => c.tag === Tag.UniqueIdentifier) ? children : [textString(Tag.UniqueIdentifier, uid), ...children]);
    await this.updateCache(operation, uid, payload);
    return answer;
  }

  /**
   * The cache after a write the key server made: a destroyed key's material and metadata go; a
   * changed key's metadata is read again (its attributes, and for Activate a lease, so that it
   * is served offline). When that fails the key is dropped from the cache — fetched again when
   * next asked for — rather than served with what the write changed.
   */
  private async updateCache(operation: number, uid: string, payload: TtlvItem): Promise<void> {
    if (operation === Operation.Destroy) return this.agent.cache.remove(uid);
    await this.fills.get(uid);
    if (!(await this.agent.cache.cached(uid))) return;
    try {
      const { attributes } = await this.agent.upstream(`reading the attributes of ${uid} after a write`, (client) => client.getAttributes(uid));
      // The Lease Time attribute is the longest lease the server grants, not one this agent holds (KMIP 1.2 §3.20).
      const changed: Attribute[] = attributes.filter((a) => a.name !== 'Lease Time');
      if (operation === Operation.DeleteAttribute) changed.unshift({ name: requiredValue(payload, Tag.AttributeName, ItemType.TextString) });
      await this.agent.cache.applyNotify(uid, changed);
      if (operation === Operation.Activate) await this.agent.obtainLease(uid);
    } catch (error) {
      this.log.warn({ event: 'kmip_cache_update_failed', uid, operation: enumerationText(Tag.Operation, operation), code: (error as { code?: string }).code }, 'the cached key could not be updated after a write: dropped from the cache');
      await this.agent.cache.remove(uid);
    }
  }
}
