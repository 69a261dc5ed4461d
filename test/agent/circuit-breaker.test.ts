// The circuit breaker (src/agent/circuit-breaker.ts): open after consecutive transport failures,
// then one probe at a time after the cool-down — the other calls fail at once (AGENT_OFFLINE)
// instead of each waiting on an unreachable upstream (issue #13 "refused fast").
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { CircuitBreaker } from '../../src/agent/circuit-breaker.ts';
import { KmipEdgeError } from '../../src/errors.ts';

const unreachable = (): Promise<never> => Promise.reject(new KmipEdgeError('NET_CONNECT_FAILED', 'ECONNREFUSED'));
const code = async (call: Promise<unknown>): Promise<string> => {
  try {
    await call;
    return 'ok';
  } catch (error) {
    return (error as { code: string }).code;
  }
};

it('opens after 3 transport failures; after the cool-down one probe goes through, the rest are refused at once; a successful probe closes it', async () => {
  let now = 0;
  const breaker = new CircuitBreaker(3, 2000, () => now);
  for (let i = 0; i < 3; i++) assert.equal(await code(breaker.run('x', unreachable)), 'NET_CONNECT_FAILED');
  assert.equal(breaker.offline, true);
  let called = 0;
  assert.equal(await code(breaker.run('x', async () => ++called)), 'AGENT_OFFLINE', 'open: not even tried');
  assert.equal(called, 0);

  now += 2000;
  let release!: () => void;
  const probe = breaker.run('probe', () => new Promise<string>((resolve) => (release = () => resolve('up'))));
  const others = await Promise.all([1, 2, 3].map(() => code(breaker.run('other', async () => ++called))));
  assert.deepEqual(others, ['AGENT_OFFLINE', 'AGENT_OFFLINE', 'AGENT_OFFLINE'], 'one probe at a time');
  assert.equal(called, 0);
  release();
  assert.equal(await probe, 'up');
  assert.equal(breaker.offline, false);
  assert.equal(await code(breaker.run('x', async () => ++called)), 'ok');
});

it('a failed probe opens it for another cool-down, and the next probe may go after it', async () => {
  let now = 0;
  const breaker = new CircuitBreaker(3, 2000, () => now);
  for (let i = 0; i < 3; i++) await code(breaker.run('x', unreachable));
  now += 2000;
  assert.equal(await code(breaker.run('probe', unreachable)), 'NET_CONNECT_FAILED');
  assert.equal(await code(breaker.run('x', async () => 1)), 'AGENT_OFFLINE', 'open again');
  now += 2000;
  assert.equal(await code(breaker.run('probe', async () => 1)), 'ok');
  assert.equal(breaker.offline, false);
});
