/**
 * The development server's managed objects (KMIP 1.2 §2.2) and their attributes (§3), in memory.
 * An attribute is a list of Attribute Value items: the list position is the Attribute Index.
 */
import type { TtlvItem } from '../ttlv/item.ts';

export interface ManagedObject {
  uid: string;
  objectType: number;
  /** The object structure as created or registered (Symmetric Key, Secret Data, Opaque Object, …). */
  object: TtlvItem;
  /** Attribute Name → values by index. */
  attributes: Map<string, TtlvItem[]>;
  /** Creation order, for Locate's order. */
  serial: number;
}

export class ObjectStore {
  protected readonly objects = new Map<string, ManagedObject>();
  protected nextSerial = 1;
  /** Objects handed out or added since the last flush: the ones a request may have changed. */
  protected readonly dirty = new Set<string>();

  /** Identifiers are small decimal numbers, like PyKMIP's, prefixed so tests can tell servers apart. */
  allocateUid(): string {
    return `dev-${this.nextSerial}`;
  }

  add(object: Omit<ManagedObject, 'serial'>): ManagedObject {
    const stored = { ...object, serial: this.nextSerial++ };
    this.objects.set(stored.uid, stored);
    this.dirty.add(stored.uid);
    return stored;
  }

  get(uid: string): ManagedObject | undefined {
    const object = this.objects.get(uid);
    if (object) this.dirty.add(uid);
    return object;
  }

  all(): ManagedObject[] {
    return [...this.objects.values()].sort((a, b) => a.serial - b.serial);
  }

  /** A deep copy of the whole store, for Batch Error Continuation Undo (KMIP 1.2 §6.14). */
  snapshot(): { objects: Map<string, ManagedObject>; nextSerial: number } {
    return { objects: structuredClone(this.objects), nextSerial: this.nextSerial };
  }

  restore(snapshot: { objects: Map<string, ManagedObject>; nextSerial: number }): void {
    for (const uid of this.objects.keys()) this.dirty.add(uid);
    for (const uid of snapshot.objects.keys()) this.dirty.add(uid);
    this.objects.clear();
    for (const [uid, object] of snapshot.objects) this.objects.set(uid, object);
    this.nextSerial = snapshot.nextSerial;
  }

  /** Makes the changes of the last request durable before it is answered; nothing to do in memory. */
  async flush(): Promise<void> {
    this.dirty.clear();
  }

  async close(): Promise<void> {}
}
