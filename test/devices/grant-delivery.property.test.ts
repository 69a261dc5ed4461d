/**
 * Issue #13 finding 3, as a property (fast-check): whatever the interleaving of new requests,
 * lost requests, lost replies, resends, concurrent bursts and agent restarts — a restart being a
 * crash: the service is abandoned with its deferred counter writes unwritten and its in-flight
 * work unanswered, and a new one opens the same LevelDB store — every unit the ledger debits for
 * the device is delivered to it, once the device has resent what it still waits for. The device
 * follows PROTOCOL.md §3.1: it resends the same frame, and sends no frame 64 or more above its
 * oldest unanswered request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import { DeviceService } from '../../src/devices/device-service.ts';
import { MAX_COUNTER_LEAD } from '../../src/devices/device-requester.ts';
import { payload } from '../../src/kmip/payloads.ts';
import { ObjectType, Operation, ResultStatus, Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { silentLogger } from '../../src/log.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { deviceRequest, startGateway } from '../helpers/gateway.ts';

let gateway: Awaited<ReturnType<typeof startGateway>>;
let uid: string;

before(async () => {
  gateway = await startGateway({ ledger: { minChunk: 500n } });
  const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 100_000_000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Object)]);
  uid = await gateway.admin.create(ObjectType.SymmetricKey, aesKey('property-key', undefined, [{ name: 'Usage Limits', value: limits }]));
  await gateway.admin.activate(uid);
});
after(() => gateway.stop());

type Step =
  | { kind: 'new'; units: number; lose: 'none' | 'request' | 'reply' }
  | { kind: 'resend'; pick: number; loseReply: boolean }
  | { kind: 'burst'; units: number[]; loseReplies: boolean[] }
  | { kind: 'restart' };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('new' as const), units: fc.integer({ min: 1, max: 5 }), lose: fc.constantFrom('none' as const, 'request' as const, 'reply' as const) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('resend' as const), pick: fc.nat(), loseReply: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('burst' as const), units: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 2, maxLength: 8 }), loseReplies: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
);

let run = 0;

describe('a grant is delivered or never debited (property)', () => {
  it('any interleaving of sends, losses, resends, bursts and crashes: units debited = units the device received', async () => {
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 60 }), async (steps) => {
      const device = await gateway.registry.add(`prop-${run++}`, { keys: [{ uniqueIdentifier: uid }], limits: { requestsPerSecond: 1e6 } });
      const client = new DeviceClient(device.id, device.key, device.suite, memoryCounters());
      let service = new DeviceService(gateway.agent, gateway.registry, gateway.deviceStore, silentLogger);
      /** Requests the device waits for: counter → frame and units. */
      const waiting = new Map<bigint, { frame: Uint8Array; units: number }>();
      let received = 0;
      const abandoned: Promise<unknown>[] = [];
      const ledgerBefore = (await gateway.agent.ledger.totals(uid)).grantedToDevices;

      const hear = (counter: bigint, reply: Uint8Array | undefined, lose: boolean) => {
        if (!reply || lose || !waiting.has(counter)) return;
        const item = client.open(reply, counter).batchItems[0]!;
        if (item.resultStatus === ResultStatus.Success) received += waiting.get(counter)!.units;
        waiting.delete(counter);
      };
      const mayLead = () => {
        const oldest = [...waiting.keys()].reduce<bigint | undefined>((a, c) => (a === undefined || c < a ? c : a), undefined);
        return oldest === undefined || client.nextCounter() - oldest < MAX_COUNTER_LEAD;
      };
      const seal = (units: number) => {
        const { frame, counter } = client.seal(deviceRequest(Operation.GetUsageAllocation, payload.getUsageAllocation(uid, BigInt(units))));
        waiting.set(counter, { frame, units });
        return { frame, counter };
      };

      for (const s of steps) {
        if (s.kind === 'new') {
          if (!mayLead()) continue; // the device waits (PROTOCOL.md §3.1)
          const { frame, counter } = seal(s.units);
          if (s.lose === 'request') continue;
          hear(counter, await service.handle(frame, device.id), s.lose === 'reply');
        } else if (s.kind === 'resend') {
          const entries = [...waiting];
          if (entries.length === 0) continue;
          const [counter, { frame }] = entries[s.pick % entries.length]!;
          hear(counter, await service.handle(frame, device.id), s.loseReply);
        } else if (s.kind === 'burst') {
          const sent = s.units.filter(() => mayLead()).map((units) => seal(units));
          const replies = await Promise.all(sent.map(({ frame }) => service.handle(frame, device.id)));
          sent.forEach(({ counter }, i) => hear(counter, replies[i], s.loseReplies[i] ?? false));
        } else {
          // A crash: whatever is in flight is not answered; what was deferred is not written.
          const inFlight = [...waiting.values()].slice(0, 3).map(({ frame }) => service.handle(frame, device.id));
          abandoned.push(...inFlight);
          service = new DeviceService(gateway.agent, gateway.registry, gateway.deviceStore, silentLogger);
        }
      }
      await Promise.all(abandoned);
      // The device resends what it still waits for, until answered (the link is good now).
      for (let round = 0; waiting.size > 0; round++) {
        assert.ok(round < 5, `requests ${[...waiting.keys()].join(', ')} are never answered`);
        for (const [counter, { frame }] of [...waiting]) hear(counter, await service.handle(frame, device.id), false);
      }
      await service.close();
      const debited = (await gateway.agent.ledger.totals(uid)).grantedToDevices - ledgerBefore;
      assert.equal(debited, BigInt(received), `the ledger debited ${debited} units, the device received ${received}`);
    }), { numRuns: 40 });
  });
});
