/**
 * A server-initiated Put or Notify as the agent applies it (KMIP 1.2 §4.28 Notify, §4.29 Put;
 * Usage Guide §4.3): read from a Request Message batch item, with a digest that identifies it so
 * that a push the server resends (its acknowledgement was lost) is acknowledged again without
 * being applied twice.
 */
import { createHash } from 'node:crypto';
import { attributeItem, readAttribute, type Attribute } from './attributes.ts';
import { objectTypeOfTag } from './payloads.ts';
import { invalidMessage, childrenOf, findChildren, optionalValue, requiredValue } from './tree.ts';
import { Operation, PutFunction, Tag } from './tables.generated.ts';
import { enumeration, textString } from '../ttlv/build.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';

export type Push =
  | { operation: 'Notify'; uniqueIdentifier: string; attributes: Attribute[]; digest: string }
  | { operation: 'Put'; uniqueIdentifier: string; replaces: string | undefined; object: TtlvItem; attributes: Attribute[]; digest: string };

/** SHA-256 of the operation and the encoded payload: equal for a resent push, hex. */
function digestOf(operation: number, payload: TtlvItem): string {
  return createHash('sha256').update(Uint8Array.of(operation)).update(encodeTtlv(payload)).digest('hex');
}

/** The push in a batch item whose operation is Put or Notify; KMIP_MESSAGE_INVALID when malformed. */
export function readPush(operation: number, payload: TtlvItem): Push {
  const uniqueIdentifier = requiredValue(payload, Tag.UniqueIdentifier, ItemType.TextString);
  const attributes = findChildren(payload, Tag.Attribute).map(readAttribute);
  const digest = digestOf(operation, payload);
  if (operation === Operation.Notify) return { operation: 'Notify', uniqueIdentifier, attributes, digest };
  if (operation !== Operation.Put) throw invalidMessage('not a Put or Notify');
  const putFunction = requiredValue(payload, Tag.PutFunction, ItemType.Enumeration);
  if (putFunction !== PutFunction.New && putFunction !== PutFunction.Replace) throw invalidMessage(`Put Function ${putFunction} is neither New nor Replace`);
  const replaces = optionalValue(payload, Tag.ReplacedUniqueIdentifier, ItemType.TextString);
  if (putFunction === PutFunction.Replace && replaces === undefined) throw invalidMessage('a Put Replace names the Replaced Unique Identifier');
  const objects = childrenOf(payload).filter((child) => objectTypeOfTag(child.tag) !== undefined);
  if (objects.length !== 1) throw invalidMessage(`a Put carries one managed object, this one ${objects.length}`);
  return { operation: 'Put', uniqueIdentifier, replaces: putFunction === PutFunction.Replace ? replaces : undefined, object: objects[0]!, attributes, digest };
}

/** Notify's payload: the object and its changed attributes; a deleted one has no value (KMIP 1.2 §4.28). */
export function notifyPayload(uniqueIdentifier: string, changed: readonly Attribute[]): TtlvItem[] {
  return [textString(Tag.UniqueIdentifier, uniqueIdentifier), ...changed.map(attributeItem)];
}

/** Put's payload: New, or Replace with the Replaced Unique Identifier; the object and its attributes (§4.29). */
export function putPayload(uniqueIdentifier: string, object: TtlvItem, attributes: readonly Attribute[], replaces?: string): TtlvItem[] {
  return [
    textString(Tag.UniqueIdentifier, uniqueIdentifier),
    enumeration(Tag.PutFunction, replaces === undefined ? PutFunction.New : PutFunction.Replace),
    ...(replaces === undefined ? [] : [textString(Tag.ReplacedUniqueIdentifier, replaces)]),
    object,
    ...attributes.map(attributeItem),
  ];
}
