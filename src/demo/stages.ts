/**
 * The demo's story, stage by stage, on a running gateway (./gateway.ts). Each stage emits events
 * carrying the effect it had, read back from the agent itself (the ledger's totals, the push
 * record the key server got back, the breaker's state) — never what the script hoped for:
 *   keys        tape-drive-7 Get (fingerprint = the key server's), sensor-1 end-to-end nonce-MAC
 *               Get, sensor-1 refused a key outside its allow-list
 *   encrypt     the tape drive encrypts in chunks, each drawing a usage allocation from the ledger
 *   put-replace the key server replaces the tape key: acknowledged by the agent, relayed to the drive
 *   notify      the key server notifies a change of the sensor key: acknowledged
 *   offline     the link to the key server is cut: keys served from the cache, chunks drawn from the
 *               allocation the agent holds (remaining drains), the upstream shown offline
 *   online      the link is back: the ledger refills from the key server again
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { keyBlockOf, keyMaterialOf, payload, readGet } from '../kmip/payloads.ts';
import { ObjectType, Operation, ResultStatus } from '../kmip/tables.generated.ts';
import { verifiedGet } from '../devices/verified-get.ts';
import { ask, fingerprint, tapeKeyAttributes, type Gateway } from './gateway.ts';

export const STAGES = ['keys', 'encrypt', 'put-replace', 'notify', 'offline', 'online'] as const;
export type Stage = (typeof STAGES)[number];

export type DemoEvent = { stage: Stage | 'setup' | 'done'; event: string; text: string } & Record<string, unknown>;
export type Emit = (event: DemoEvent) => void;

/** One tape chunk: this many bytes encrypted, drawn as a usage allocation. */
export const CHUNK_BYTES = 1024n;

interface Ledger { allocatedFromUpstream: string; grantedToDevices: string; remaining: string }

async function ledgerOf(gw: Gateway, uid: string): Promise<Ledger> {
  const t = await gw.agent.ledger.totals(uid);
  return { allocatedFromUpstream: String(t.allocatedFromUpstream), grantedToDevices: String(t.grantedToDevices), remaining: String(t.allocatedFromUpstream - t.grantedToDevices) };
}

const outcome = (item: { resultStatus: number; resultMessage?: string | undefined }) => (item.resultStatus === ResultStatus.Success ? 'served' : `refused (${item.resultMessage})`);

export class DemoRun {
  /** The tape key now in use (replaced by the Put). */
  tapeKey: string;
  readonly problems: string[] = [];
  private chunkNo = 0;
  /** The tape key's upstream allocation last seen: a rise is a refill (background ones included). */
  private allocated = 0n;

  constructor(private readonly gw: Gateway, private readonly emit: Emit, private readonly pace: number, private readonly signal: AbortSignal) {
    this.tapeKey = gw.keys.tape;
  }

  private check(ok: boolean, what: string): void {
    if (!ok) this.problems.push(what);
  }

  private async wait(ms = this.pace): Promise<void> {
    await sleep(ms, undefined, { signal: this.signal });
  }

  /** The tape drive encrypts one chunk: a Get Usage Allocation of CHUNK_BYTES, the ledger before and after. */
  async chunk(stage: Stage): Promise<{ served: boolean; before: Ledger; after: Ledger }> {
    const uid = this.tapeKey;
    const before = await ledgerOf(this.gw, uid);
    const item = await ask(this.gw.tape, `allocate ${CHUNK_BYTES}`, Operation.GetUsageAllocation, payload.getUsageAllocation(uid, CHUNK_BYTES));
    const after = await ledgerOf(this.gw, uid);
    const served = item.resultStatus === ResultStatus.Success;
    const upstream = this.gw.link.isCut ? 'cut' : 'up';
    this.chunkNo++;
    this.emit({
      stage, event: 'chunk', text: `tape-drive-7 chunk ${this.chunkNo}: ${CHUNK_BYTES} bytes of ${uid} — ${outcome(item)}; ledger ${after.allocatedFromUpstream} allocated, ${after.grantedToDevices} granted, ${after.remaining} remaining`,
      uid, count: String(CHUNK_BYTES), served, link: upstream, before, after,
    });
    const allocated = BigInt(after.allocatedFromUpstream);
    if (allocated > this.allocated) this.emit({ stage, event: 'refill', text: `ledger refilled from the key server: +${allocated - this.allocated} bytes of ${uid} (${allocated} allocated in all)`, uid, from: String(this.allocated), to: String(allocated) });
    this.allocated = allocated;
    return { served, before, after };
  }

  async run(): Promise<void> {
    for (const stage of STAGES) {
      this.emit({ stage, event: 'stage', text: `— ${stage} —` });
      await this[STAGE_METHODS[stage]]();
      await this.wait();
    }
  }

  private async keys(): Promise<void> {
    const { gw } = this;
    const got = await ask(gw.tape, 'Get tape-key', Operation.Get, payload.get(this.tapeKey));
    const served = got.payload ? fingerprint(keyMaterialOf(keyBlockOf(readGet(got.payload).object))) : 'none';
    const same = served === (await gw.serverMaterial(this.tapeKey));
    this.check(same, 'the tape key served differs from the key server\'s');
    this.emit({ stage: 'keys', event: 'get', text: `tape-drive-7 Get tape-key: ${outcome(got)}, fingerprint ${served} ${same ? '= the key server\'s' : '≠ the key server\'s'} (the agent fetched it with nonce-MAC)`, device: 'tape-drive-7', uid: this.tapeKey, served: got.resultStatus === ResultStatus.Success, sameAsServer: same });
    await this.wait();
    const macBytes = keyMaterialOf(keyBlockOf((await gw.admin.get(gw.keys.mac)).object)); // provisioned on the device
    const verified = await verifiedGet(gw.sensor.requester, gw.keys.sensor, gw.keys.mac, macBytes);
    gw.sensor.activity.lastRequest = 'nonce-MAC Get sensor-key';
    gw.sensor.activity.lastResult = verified.ok ? 'served, HMAC verified' : `rejected: ${verified.error}`;
    gw.sensor.activity.at = Date.now();
    gw.sensor.activity.requests++;
    this.check(verified.ok, 'end-to-end nonce-MAC');
    this.emit({ stage: 'keys', event: 'nonce-mac', text: `sensor-1 nonce-MAC Get of sensor-key: ${verified.ok ? `HMAC and its own x-Nonce verified at the device, fingerprint ${fingerprint(verified.material)}` : `REJECTED (${verified.error})`}`, device: 'sensor-1', uid: gw.keys.sensor, verified: verified.ok });
    await this.wait();
    const forbidden = await ask(gw.sensor, 'Get tape-key', Operation.Get, payload.get(this.tapeKey));
    this.check(forbidden.resultStatus !== ResultStatus.Success, 'sensor-1 got a key outside its allow-list');
    this.emit({ stage: 'keys', event: 'refused', text: `sensor-1 Get tape-key (not on its allow-list): ${outcome(forbidden)}`, device: 'sensor-1', uid: this.tapeKey, served: forbidden.resultStatus === ResultStatus.Success });
    const lease = await ask(gw.tape, 'Obtain Lease tape-key', Operation.ObtainLease, payload.obtainLease(this.tapeKey));
    this.emit({ stage: 'keys', event: 'lease', text: `tape-drive-7 Obtain Lease of tape-key: ${outcome(lease)}`, device: 'tape-drive-7', uid: this.tapeKey, served: lease.resultStatus === ResultStatus.Success });
  }

  private async encrypt(): Promise<void> {
    let drawn = 0n;
    const start = await ledgerOf(this.gw, this.tapeKey);
    for (let i = 0; i < 6; i++) {
      const { served } = await this.chunk('encrypt');
      if (served) drawn += CHUNK_BYTES;
      await this.wait();
    }
    const end = await ledgerOf(this.gw, this.tapeKey);
    const granted = BigInt(end.grantedToDevices) - BigInt(start.grantedToDevices);
    this.check(granted === drawn && drawn === 6n * CHUNK_BYTES, `the ledger shows ${granted} bytes granted for ${drawn} drawn`);
    this.emit({ stage: 'encrypt', event: 'drawn', text: `tape-drive-7 encrypted ${drawn} bytes in 6 chunks; the ledger shows ${granted} bytes granted`, uid: this.tapeKey, drawn: String(drawn), ledgerGranted: String(granted) });
  }

  private async putReplace(): Promise<void> {
    const { gw } = this;
    const old = this.tapeKey;
    const next = await gw.admin.create(ObjectType.SymmetricKey, tapeKeyAttributes());
    await gw.admin.activate(next);
    const before = gw.tape.pushes.length;
    const [record] = await gw.server.put(next, old);
    for (let i = 0; i < 100 && !gw.tape.pushes.slice(before).some((p) => p.batchItems[0]!.operation === Operation.Put); i++) await this.wait(50);
    const relayed = gw.tape.pushes.slice(before).some((p) => p.batchItems[0]!.operation === Operation.Put);
    this.check(record?.acknowledged === true && relayed, 'the Put Replace was not acknowledged and relayed');
    this.tapeKey = next;
    this.allocated = 0n; // a new key, a new ledger
    this.emit({ stage: 'put-replace', event: 'put', text: `key server Put Replace ${old} → ${next}: ${record?.acknowledged ? 'acknowledged by the agent (on disk first)' : 'NOT acknowledged'}; relayed to tape-drive-7: ${relayed ? 'received and acknowledged' : 'NOT received'}`, old, new: next, acknowledged: record?.acknowledged === true, relayed });
    await this.wait();
    await this.chunk('put-replace');
  }

  private async notify(): Promise<void> {
    const { gw } = this;
    const [record] = await gw.server.notify(gw.keys.sensor);
    this.check(record?.acknowledged === true, 'the Notify was not acknowledged');
    this.emit({ stage: 'notify', event: 'notify', text: `key server Notify (sensor-key changed): ${record?.acknowledged ? 'acknowledged by the agent' : 'NOT acknowledged'}`, uid: gw.keys.sensor, acknowledged: record?.acknowledged === true });
  }

  private async offline(): Promise<void> {
    const { gw } = this;
    gw.link.sever();
    this.emit({ stage: 'offline', event: 'cut', text: 'the link to the key server is cut' });
    await this.wait();
    const get = await ask(gw.tape, 'Get tape-key', Operation.Get, payload.get(this.tapeKey));
    this.check(get.resultStatus === ResultStatus.Success, 'offline Get from the cache');
    this.emit({ stage: 'offline', event: 'get', text: `tape-drive-7 Get tape-key with the key server away: ${outcome(get)} from the cache`, uid: this.tapeKey, served: get.resultStatus === ResultStatus.Success });
    // Draw from the allocation the agent holds until it runs out (or 12 chunks): remaining drains.
    let served = 0;
    let refused = 0;
    let first: string | undefined;
    let last: string | undefined;
    for (let i = 0; i < 12 && refused === 0; i++) {
      const chunk = await this.chunk('offline');
      first ??= chunk.before.remaining;
      last = chunk.after.remaining;
      if (chunk.served) served++;
      else refused++;
      await this.wait();
    }
    const state = (await gw.status()).upstream.state;
    this.check(served > 0, 'no chunk served offline');
    this.emit({ stage: 'offline', event: 'offline-serving', text: `with the key server away: ${served} chunks served from the agent's allocation (remaining ${first} → ${last})${refused > 0 ? ', then refused once it ran out' : ''}; upstream shown ${state}`, served, refused, remainingBefore: first, remainingAfter: last, upstream: state });
  }

  private async online(): Promise<void> {
    const { gw } = this;
    gw.link.restore();
    this.emit({ stage: 'online', event: 'restored', text: 'the link to the key server is back' });
    // The breaker lets a call through after its cooldown; the next chunk's refill shows it.
    const atRestore = this.allocated;
    let refilled = false;
    for (let i = 0; i < 40 && !refilled; i++) {
      await this.wait(Math.max(this.pace, 500)); // the breaker's cooldown (2 s) passes in a few steps
      await this.chunk('online');
      refilled = this.allocated > atRestore;
    }
    this.check(refilled, 'no refill after the key server came back');
    const state = (await gw.status()).upstream.state;
    this.emit({ stage: 'online', event: 'refills-resumed', text: `refills resumed: the ledger draws from the key server again; upstream shown ${state}`, refilled, upstream: state });
  }
}

const STAGE_METHODS: Record<Stage, 'keys' | 'encrypt' | 'putReplace' | 'notify' | 'offline' | 'online'> = {
  keys: 'keys', encrypt: 'encrypt', 'put-replace': 'putReplace', notify: 'notify', offline: 'offline', online: 'online',
};
