/**
 * "May this key be used to protect / to process at time t?" — decided locally from the key's
 * state, dates and lease (KMIP 1.2 §3.22–3.30, FACTS.md §5.12, ARCHITECTURE.md §4 invariant 7), so
 * that the answer holds while the upstream is unreachable. Dates are seconds since the epoch.
 */
import { State } from '../kmip/tables.generated.ts';

export interface KeyFacts {
  state: number;
  activationDate?: bigint | undefined;
  processStartDate?: bigint | undefined;
  protectStopDate?: bigint | undefined;
  deactivationDate?: bigint | undefined;
  compromiseDate?: bigint | undefined;
  /** End of the current lease; undefined when the lease has no limit (Lease Time 0). */
  leaseExpiresAt?: bigint | undefined;
}

export type Purpose = 'protect' | 'process';

/** Codes say why not: KEY_NOT_ACTIVE, KEY_NOT_YET_ACTIVE, KEY_PROTECT_STOPPED, KEY_DEACTIVATED, KEY_COMPROMISED, KEY_LEASE_EXPIRED, KEY_PROCESS_NOT_STARTED. */
export type Decision = { allowed: true } | { allowed: false; code: string; reason: string };

const deny = (code: string, reason: string): Decision => ({ allowed: false, code, reason });
/** One object for every yes: asked on every cached Get. */
const ALLOWED: Decision = Object.freeze({ allowed: true });

export function mayUse(key: KeyFacts, purpose: Purpose, now: bigint): Decision {
  // A compromised key is served for nothing by the agent, whatever its dates (invariant 7).
  if (key.state === State.Compromised || key.state === State.DestroyedCompromised || (key.compromiseDate !== undefined && key.compromiseDate <= now)) {
    return deny('KEY_COMPROMISED', 'the key is compromised');
  }
  const deactivated = key.state === State.Deactivated || (key.deactivationDate !== undefined && key.deactivationDate <= now);
  if (purpose === 'protect') {
    if (deactivated) return deny('KEY_DEACTIVATED', 'a deactivated key may only process');
    if (key.state !== State.Active) return deny('KEY_NOT_ACTIVE', `the key is not Active`);
    if (key.activationDate !== undefined && now < key.activationDate) return deny('KEY_NOT_YET_ACTIVE', 'before the Activation Date');
    if (key.protectStopDate !== undefined && now >= key.protectStopDate) return deny('KEY_PROTECT_STOPPED', 'past the Protect Stop Date');
    return leaseCheck(key, now);
  }
  if (key.state !== State.Active && key.state !== State.Deactivated) return deny('KEY_NOT_ACTIVE', 'only an Active or Deactivated key may process');
  const processStart = key.processStartDate ?? key.activationDate;
  if (processStart !== undefined && now < processStart) return deny('KEY_PROCESS_NOT_STARTED', 'before the Process Start Date');
  return leaseCheck(key, now);
}

/** KMIP 1.2 §3.20: once a lease expires the object must not be used until a new lease is obtained. */
function leaseCheck(key: KeyFacts, now: bigint): Decision {
  if (key.leaseExpiresAt !== undefined && now >= key.leaseExpiresAt) return deny('KEY_LEASE_EXPIRED', 'no current lease on the key');
  return ALLOWED;
}
