/** Key-state decisions at the boundaries: just before and at each date, lease expiry, states. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mayUse, type KeyFacts } from '../../src/agent/key-policy.ts';
import { State } from '../../src/kmip/tables.generated.ts';

const T = 1_800_000_000n;
const active: KeyFacts = { state: State.Active, activationDate: T, processStartDate: T + 10n, protectStopDate: T + 100n, deactivationDate: T + 200n, leaseExpiresAt: T + 300n };
const code = (facts: KeyFacts, purpose: 'protect' | 'process', at: bigint) => {
  const decision = mayUse(facts, purpose, at);
  return decision.allowed ? 'allowed' : decision.code;
};

describe('mayUse (KMIP 1.2 §3.22–3.30, invariant 7)', () => {
  it('Activation Date: protect from that second on, not the second before', () => {
    assert.equal(code(active, 'protect', T - 1n), 'KEY_NOT_YET_ACTIVE');
    assert.equal(code(active, 'protect', T), 'allowed');
  });
  it('Process Start Date: process from that second on', () => {
    assert.equal(code(active, 'process', T + 9n), 'KEY_PROCESS_NOT_STARTED');
    assert.equal(code(active, 'process', T + 10n), 'allowed');
    assert.equal(code({ ...active, processStartDate: undefined }, 'process', T), 'allowed', 'defaults to the Activation Date');
  });
  it('Protect Stop Date: protect until the second before, process goes on', () => {
    assert.equal(code(active, 'protect', T + 99n), 'allowed');
    assert.equal(code(active, 'protect', T + 100n), 'KEY_PROTECT_STOPPED');
    assert.equal(code(active, 'process', T + 100n), 'allowed');
  });
  it('Deactivation Date and Deactivated: process yes, protect no', () => {
    const noStop = { ...active, protectStopDate: undefined };
    assert.equal(code(noStop, 'protect', T + 199n), 'allowed');
    assert.equal(code(noStop, 'protect', T + 200n), 'KEY_DEACTIVATED');
    assert.equal(code(noStop, 'process', T + 200n), 'allowed');
    assert.equal(code({ ...noStop, state: State.Deactivated }, 'protect', T + 50n), 'KEY_DEACTIVATED');
    assert.equal(code({ ...noStop, state: State.Deactivated }, 'process', T + 50n), 'allowed');
  });
  it('lease: usable until the second before it expires, for either purpose; no limit without one', () => {
    const long = { ...active, protectStopDate: undefined, deactivationDate: undefined };
    assert.equal(code(long, 'protect', T + 299n), 'allowed');
    assert.equal(code(long, 'protect', T + 300n), 'KEY_LEASE_EXPIRED');
    assert.equal(code(long, 'process', T + 300n), 'KEY_LEASE_EXPIRED');
    assert.equal(code({ ...long, leaseExpiresAt: undefined }, 'protect', T + 10_000n), 'allowed');
  });
  it('Compromised (state or Compromise Date reached): neither; Pre-Active and Destroyed: neither', () => {
    assert.equal(code({ ...active, state: State.Compromised }, 'process', T + 50n), 'KEY_COMPROMISED');
    assert.equal(code({ ...active, compromiseDate: T + 50n }, 'protect', T + 49n), 'allowed');
    assert.equal(code({ ...active, compromiseDate: T + 50n }, 'process', T + 50n), 'KEY_COMPROMISED');
    for (const state of [State.PreActive, State.Destroyed]) {
      assert.equal(code({ ...active, state }, 'protect', T + 50n), 'KEY_NOT_ACTIVE');
      assert.equal(code({ ...active, state }, 'process', T + 50n), 'KEY_NOT_ACTIVE');
    }
  });
});
