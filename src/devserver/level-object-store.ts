/**
 * The development server's objects on disk, in the agent's LevelDB store (src/store): the
 * in-memory store, plus one synced batch per request holding every object the request may have
 * changed, written before the response goes out. Each object is one TTLV record. This is a test stand-in for an
 * enterprise key server: its keys are stored unencrypted — never give it real keys.
 */
import { attributeItem, readAttribute } from '../kmip/attributes.ts';
import { Tag } from '../kmip/tables.generated.ts';
import { childrenOf, findChildren, requiredChild, requiredValue } from '../kmip/tree.ts';
import { enumeration, integer, structure, textString } from '../ttlv/build.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { ItemType, type TtlvItem } from '../ttlv/item.ts';
import { LevelStore } from '../store/kv-store.ts';
import { ObjectStore, type ManagedObject } from './object-store.ts';

/** Extension tags (KMIP 1.2 §9.1.3.1: 0x54xxxx) for the record layout; never on the wire. */
const RECORD = 0x540100;
const RECORD_UID = 0x540101;
const RECORD_TYPE = 0x540102;
const RECORD_SERIAL = 0x540103;
const RECORD_OBJECT = 0x540104;

function toRecord(object: ManagedObject): Uint8Array {
  const attributes: TtlvItem[] = [];
  for (const [name, values] of object.attributes) values.forEach((value, index) => attributes.push(attributeItem({ name, index, value })));
  return encodeTtlv(structure(RECORD, [
    textString(RECORD_UID, object.uid),
    enumeration(RECORD_TYPE, object.objectType),
    integer(RECORD_SERIAL, object.serial),
    structure(RECORD_OBJECT, [object.object]),
    ...attributes,
  ]), { maxMessageBytes: 16 * 1024 * 1024 });
}

function fromRecord(bytes: Uint8Array): ManagedObject {
  const record = decodeTtlv(bytes, { maxMessageBytes: 16 * 1024 * 1024 });
  const attributes = new Map<string, TtlvItem[]>();
  for (const item of findChildren(record, Tag.Attribute)) {
    const attribute = readAttribute(item);
    const values = attributes.get(attribute.name) ?? [];
    values[attribute.index ?? 0] = attribute.value!;
    attributes.set(attribute.name, values);
  }
  return {
    uid: requiredValue(record, RECORD_UID, ItemType.TextString),
    objectType: requiredValue(record, RECORD_TYPE, ItemType.Enumeration),
    serial: requiredValue(record, RECORD_SERIAL, ItemType.Integer),
    object: childrenOf(requiredChild(record, RECORD_OBJECT))[0]!,
    attributes,
  };
}

export class LevelObjectStore extends ObjectStore {
  private constructor(private readonly db: LevelStore) {
    super();
  }

  static async open(path: string): Promise<LevelObjectStore> {
    const db = await LevelStore.open(path);
    const store = new LevelObjectStore(db);
    for await (const [, value] of db.entries('')) {
      const object = fromRecord(value);
      store.objects.set(object.uid, object);
      store.nextSerial = Math.max(store.nextSerial, object.serial + 1);
    }
    return store;
  }

  override async flush(): Promise<void> {
    if (this.dirty.size === 0) return;
    const operations = [...this.dirty].map((uid) => {
      const object = this.objects.get(uid);
      return object ? { type: 'put' as const, key: uid, value: toRecord(object) } : { type: 'del' as const, key: uid };
    });
    this.dirty.clear();
    await this.db.commit(operations);
  }

  override async close(): Promise<void> {
    await this.db.close();
  }
}
