/**
 * Relaying upstream Put and Notify to devices (ARCHITECTURE.md §3, KMIP Usage Guide §4.3: the
 * proxy acts for devices that cannot take a server's connection). Each push concerning a key a
 * device may use becomes an entry in that device's durable outbox — written in the same synced
 * batch that applies the push, so an acknowledged push is never lost for the devices — and is
 * sent down as a frame (a KMIP Request Message) until the device answers it with a Response
 * Message (its acknowledgement, PROTOCOL.md §5). One push at a time per device, in order; each
 * attempt is a new frame with a new counter, retried with back-off, at once when the device is
 * heard from again, and after an agent restart.
 * Outbox entries hold key material, so they are sealed under the master key like the cache.
 */
import type { AlongsideWrites } from '../agent/key-cache.ts';
import { buildRequestMessage, parseResponseMessage } from '../kmip/message.ts';
import { notifyPayload, putPayload, type Push } from '../kmip/push.ts';
import { Operation, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import type { Logger } from '../log.ts';
import type { BatchOperation, KeyValueStore } from '../store/kv-store.ts';
import type { MasterKey } from '../store/master-key.ts';
import { decodeTtlv } from '../ttlv/decode.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { ItemType } from '../ttlv/item.ts';
import { NONCE_ATTRIBUTE } from '../upstream/nonce-mac.ts';
import type { DownCounters } from './down-counters.ts';
import { MAX_FRAME_BYTES, sealFrame, TAG_BYTES } from './frame.ts';
import { keyAllowed, type Device, type DeviceRegistry } from './registry.ts';

export const OUTBOX = 'outbox/';
/** Bytes of a down frame besides the body and the device id: fixed header and tag. */
const FRAME_OVERHEAD = 4 + 8 + TAG_BYTES;

export type FrameSender = (frame: Uint8Array) => void;

export interface RelayOptions {
  /** First retry after this long without an acknowledgement; doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
}

interface Lane {
  entryKey: string | undefined;
  /** Counters of the frames sent for the entry in flight: an answer to any of them acknowledges it. */
  counters: Set<bigint>;
  sentAt: number;
  attempts: number;
  timer: NodeJS.Timeout | undefined;
  busy: boolean;
  /** Delivery was asked for while busy: look at the outbox again when done. */
  again: boolean;
}

export class PushRelay {
  private readonly lanes = new Map<string, Lane>();
  /** How to reach a device: the link it was last heard on, else the default (MQTT's down topic). */
  private readonly routes = new Map<string, FrameSender>();
  private sequence = 0n;
  private closed = false;
  /** Relayed pushes acknowledged by devices, and entries dropped as undeliverable. */
  readonly counts = { sent: 0, acknowledged: 0, undeliverable: 0 };
  defaultRoute: ((deviceId: string) => FrameSender | undefined) | undefined;

  constructor(
    private readonly store: KeyValueStore,
    private readonly masterKey: MasterKey,
    private readonly registry: DeviceRegistry,
    private readonly counters: DownCounters,
    private readonly log: Logger,
    private readonly options: RelayOptions = {},
  ) {}

  /**
   * The outbox writes for `push`, to commit with it: one entry per device whose allow-list covers
   * the key (by the metadata the push leaves, or its identifier and Names when the agent does not
   * hold the key) or the key it replaces; none for a stale Notify or one only about `x-Nonce`.
   * The device list is read now, the writes are built when the push is applied; `deliver` starts
   * delivery once they are durable.
   */
  async prepare(push: Push): Promise<{ writes: AlongsideWrites; deliver: () => void }> {
    const devices = await this.registry.list();
    const concernedIds: string[] = [];
    const writes: AlongsideWrites = (metadata, changed) => {
      if (!changed || nonceOnly(push)) return [];
      const key = metadata ?? { uniqueIdentifier: push.uniqueIdentifier, names: namesIn(push), objectGroups: [] };
      const concerned = devices.filter((d) => keyAllowed(d, key) || (push.operation === 'Put' && push.replaces !== undefined && keyAllowed(d, { uniqueIdentifier: push.replaces, names: [], objectGroups: [] })));
      const message = encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [relayedItem(push)], { timeStamp: new Date() }));
      const out: BatchOperation[] = [];
      for (const device of concerned) {
        if (message.length + FRAME_OVERHEAD + device.id.length > Math.min(MAX_FRAME_BYTES, device.limits.maxFrameBytes)) {
          this.counts.undeliverable++;
          this.log.warn({ event: 'push_undeliverable', device: device.id, uid: push.uniqueIdentifier, bytes: message.length }, 'push too large for a device frame: not relayed');
          continue;
        }
        const entryKey = `${OUTBOX}${device.id}/${this.nextSequence()}`;
        out.push({ type: 'put', key: entryKey, value: this.masterKey.seal(message, entryKey) });
      }
      concernedIds.push(...concerned.map((d) => d.id));
      return out;
    };
    // Once the writes are on disk: start delivery to the devices concerned.
    return { writes, deliver: () => concernedIds.forEach((id) => void this.deliver(id)) };
  }

  /** Resumes delivery of every outbox (after a restart). */
  async resume(): Promise<number> {
    const devices = new Set<string>();
    for await (const [key] of this.store.entries(OUTBOX)) devices.add(key.slice(OUTBOX.length, key.lastIndexOf('/')));
    for (const id of devices) void this.deliver(id);
    return devices.size;
  }

  /** The device was heard on `send` (any authenticated frame): remember the route, deliver at once if waiting. */
  heard(deviceId: string, send: FrameSender | undefined): void {
    if (send) this.routes.set(deviceId, send);
    const lane = this.lanes.get(deviceId);
    if (lane?.entryKey !== undefined && !lane.busy && Date.now() - lane.sentAt > 500) {
      clearTimeout(lane.timer);
      void this.deliver(deviceId, true);
    }
  }

  /**
   * The device answered the frame with counter `replyTo`: the writes that remove the entry (to
   * commit with the device's counter), then `acknowledged` once they are on disk. Undefined when
   * it answers nothing in flight (a late answer to an entry already removed).
   */
  acknowledgement(device: Device, replyTo: bigint, body: Uint8Array): BatchOperation[] | undefined {
    const lane = this.lanes.get(device.id);
    if (!lane?.entryKey || !lane.counters.has(replyTo)) return undefined;
    try {
      const item = parseResponseMessage(decodeTtlv(body)).batchItems[0];
      if (item?.resultStatus !== ResultStatus.Success) this.log.warn({ device: device.id, status: item && enumerationText(Tag.ResultStatus, item.resultStatus), reason: item?.resultMessage }, 'device refused a relayed push: not sent again');
    } catch {
      this.log.warn({ device: device.id }, 'device answered a relayed push with an invalid message: counted as answered');
    }
    return [{ type: 'del', key: lane.entryKey }];
  }

  /** After the acknowledgement's writes are on disk: the next entry goes out. */
  acknowledged(deviceId: string): void {
    const lane = this.lanes.get(deviceId);
    if (!lane) return;
    clearTimeout(lane.timer);
    this.counts.acknowledged++;
    this.log.info({ event: 'push_relay_acknowledged', device: deviceId, entry: lane.entryKey, attempts: lane.attempts }, 'relayed push acknowledged by the device');
    lane.entryKey = undefined;
    lane.counters.clear();
    lane.attempts = 0;
    void this.deliver(deviceId);
  }

  close(): void {
    this.closed = true;
    for (const lane of this.lanes.values()) clearTimeout(lane.timer);
  }

  private nextSequence(): string {
    // Time-ordered and unique within this process; a restart continues later in time.
    return (BigInt(Date.now()) * 4096n + (this.sequence++ % 4096n)).toString(16).padStart(16, '0');
  }

  /** Sends the device's oldest outbox entry (again, with a new counter, when `resend`). */
  private async deliver(deviceId: string, resend = false): Promise<void> {
    const lane = this.lanes.get(deviceId) ?? { entryKey: undefined, counters: new Set<bigint>(), sentAt: 0, attempts: 0, timer: undefined, busy: false, again: false };
    this.lanes.set(deviceId, lane);
    if (lane.busy) lane.again = true;
    if (this.closed || lane.busy || (lane.entryKey !== undefined && !resend)) return;
    lane.busy = true;
    lane.again = false;
    try {
      if (lane.entryKey === undefined) {
        const first = await this.firstEntry(deviceId);
        if (!first) return;
        lane.entryKey = first;
      }
      const route = this.routes.get(deviceId) ?? this.defaultRoute?.(deviceId);
      const device = await this.registry.get(deviceId);
      if (!device) {
        await this.store.commit([{ type: 'del', key: lane.entryKey }]); // the device was removed
        lane.entryKey = undefined;
        return;
      }
      if (route) {
        const sealed = await this.store.get(lane.entryKey);
        if (!sealed) {
          lane.entryKey = undefined;
          return;
        }
        const counter = await this.counters.next(deviceId);
        const frame = sealFrame({ suite: device.suite, direction: 'down', deviceId, counter, replyTo: undefined }, device.key, this.masterKey.open(sealed, lane.entryKey));
        lane.counters.add(counter); // before sending: the answer may come back within the call
        route(frame);
        this.counts.sent++;
        this.log.info({ event: 'push_relayed', device: deviceId, entry: lane.entryKey, attempt: lane.attempts + 1 }, 'push relayed to the device');
      }
      lane.sentAt = Date.now();
      lane.attempts++;
      const delay = Math.min(this.options.maxRetryMs ?? 30_000, (this.options.retryMs ?? 1000) * 2 ** Math.min(lane.attempts - 1, 16));
      clearTimeout(lane.timer);
      lane.timer = setTimeout(() => void this.deliver(deviceId, true), delay);
    } catch (error) {
      this.log.warn({ event: 'push_relay_failed', device: deviceId, reason: (error as Error).message }, 'relaying a push failed: retried');
    } finally {
      lane.busy = false;
      if (lane.again && lane.entryKey === undefined) void this.deliver(deviceId);
    }
  }

  private async firstEntry(deviceId: string): Promise<string | undefined> {
    for await (const [key] of this.store.entries(`${OUTBOX}${deviceId}/`)) return key;
    return undefined;
  }
}

/** The push as a batch item for the device: the same operation and payload as the upstream sent. */
function relayedItem(push: Push) {
  return push.operation === 'Put'
    ? { operation: Operation.Put, payload: putPayload(push.uniqueIdentifier, push.object, push.attributes, push.replaces) }
    : { operation: Operation.Notify, payload: notifyPayload(push.uniqueIdentifier, push.attributes) };
}

/**
 * A Notify that only says a nonce-MAC exchange set `x-Nonce` (ARCHITECTURE.md §6): per-exchange
 * state of whoever set it, nothing a device acts on — not relayed.
 */
function nonceOnly(push: Push): boolean {
  return push.operation === 'Notify' && push.attributes.some((a) => a.name === NONCE_ATTRIBUTE) && push.attributes.every((a) => a.name === NONCE_ATTRIBUTE || a.name === 'Last Change Date');
}

function namesIn(push: Push): string[] {
  return push.attributes.filter((a) => a.name === 'Name' && a.value?.type === ItemType.Structure)
    .map((a) => (a.value!.value as { tag: number; value: unknown }[]).find((c) => c.tag === Tag.NameValue)?.value)
    .filter((v): v is string => typeof v === 'string');
}
