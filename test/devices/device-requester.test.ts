/**
 * How a device makes requests (src/devices/device-requester.ts), over a fake link (a unit test):
 * an unanswered request is resent as the same frame until answered; past its deadline it fails;
 * at most 16 are in flight; a reply is matched to its request by reply_to.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceClient, memoryCounters } from '../../src/devices/device-client.ts';
import { DeviceRequester, MAX_COUNTER_LEAD, MAX_IN_FLIGHT } from '../../src/devices/device-requester.ts';
import { parseFrameHeader, sealFrame, Suite } from '../../src/devices/frame.ts';
import { buildResponseMessage } from '../../src/kmip/message.ts';
import { payload } from '../../src/kmip/payloads.ts';
import { Operation, ResultStatus } from '../../src/kmip/tables.generated.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { deviceRequest } from '../helpers/gateway.ts';
import { until } from '../helpers/until.ts';

const key = new Uint8Array(32).fill(9);
const request = deviceRequest(Operation.Get, payload.get('some-key'));
const success = encodeTtlv(buildResponseMessage({ major: 1, minor: 2 }, [{ operation: Operation.Get, resultStatus: ResultStatus.Success, payload: [] }]));

/** The agent's reply to `frame`, under down counter `down`. */
function replyTo(frame: Uint8Array, down: bigint): Uint8Array {
  const { header } = parseFrameHeader(frame);
  return sealFrame({ suite: Suite.AES_256_GCM, direction: 'down', deviceId: 'dev-r', counter: down, replyTo: header.counter }, key, success);
}

function requester(): { requester: DeviceRequester; sent: Uint8Array[] } {
  const sent: Uint8Array[] = [];
  return { requester: new DeviceRequester(new DeviceClient('dev-r', key, Suite.AES_256_GCM, memoryCounters()), (frame) => sent.push(frame)), sent };
}

describe('device requester', () => {
  it('resends the same frame (same counter) until answered, then resolves with the response', async () => {
    const { requester: r, sent } = requester();
    const pending = r.request(request, { resendMs: 20, deadlineMs: 10_000 });
    await until(() => sent.length >= 3, 'two resends');
    assert.ok(sent.every((frame) => Buffer.from(frame).equals(Buffer.from(sent[0]!))), 'every attempt is the same frame');
    r.deliver(replyTo(sent[0]!, 1n));
    assert.equal((await pending).batchItems[0]!.resultStatus, ResultStatus.Success);
    const count = sent.length;
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(sent.length, count, 'nothing is resent once answered');
  });

  it('fails with DEVICE_NO_ANSWER past its deadline', async () => {
    const { requester: r } = requester();
    await assert.rejects(r.request(request, { resendMs: 10, deadlineMs: 50 }), (error: { code?: string }) => error.code === 'DEVICE_NO_ANSWER');
  });

  it('matches replies by reply_to (out of order), ignores one to nothing in flight, and refuses a 17th request in flight', async () => {
    const { requester: r, sent } = requester();
    const pending = Array.from({ length: MAX_IN_FLIGHT }, () => r.request(request, { resendMs: 10_000 }));
    await assert.rejects(r.request(request), (error: { code?: string }) => error.code === 'DEVICE_BUSY');
    const firstFrames = sent.slice(0, MAX_IN_FLIGHT);
    firstFrames.reverse().forEach((frame, i) => r.deliver(replyTo(frame, BigInt(i + 1))));
    r.deliver(replyTo(firstFrames[0]!, 99n)); // answered already: ignored
    const responses = await Promise.all(pending);
    assert.equal(responses.length, MAX_IN_FLIGHT);
    assert.ok(responses.every((response) => response.batchItems[0]!.resultStatus === ResultStatus.Success));
  });

  it('sends no frame 64 or more above its oldest unanswered request (PROTOCOL.md §3.1): the next waits until that one is answered', async () => {
    const { requester: r, sent } = requester();
    const oldest = r.request(request, { resendMs: 10_000 });
    const oldestFrame = sent[0]!;
    let down = 1n;
    for (let i = 1n; i < MAX_COUNTER_LEAD; i++) {
      const answered = r.request(request, { resendMs: 10_000 });
      r.deliver(replyTo(sent[sent.length - 1]!, down++));
      await answered;
    }
    const before = sent.length;
    let done = false;
    const held = r.request(request, { resendMs: 10_000 }).then(() => (done = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(sent.length, before, 'counter 65 would leave request 1 below the agent\'s window: not sent');
    r.deliver(replyTo(oldestFrame, down++));
    await oldest;
    await until(() => sent.length === before + 1, 'the held request to go out');
    assert.equal(parseFrameHeader(sent[before]!).header.counter, MAX_COUNTER_LEAD + 1n);
    r.deliver(replyTo(sent[before]!, down++));
    await held;
    assert.ok(done);
  });
});
