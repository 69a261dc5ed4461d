/**
 * Offline detection for the upstream (ARCHITECTURE.md layer 4): after `failures` consecutive
 * transport failures the breaker opens and upstream calls fail at once with AGENT_OFFLINE, so
 * the agent answers from its cache without waiting on timeouts; after `cooldownMs` one call is let
 * through to probe, and a success closes the breaker again.
 */
import { KmipEdgeError } from '../errors.ts';

export class CircuitBreaker {
  private consecutiveFailures = 0;
  private openUntil = 0;
  /** A call is probing the upstream after the cool-down: the others are refused meanwhile. */
  private probing = false;

  constructor(
    private readonly failures = 3,
    private readonly cooldownMs = 2000,
    private readonly now: () => number = Date.now,
  ) {}

  get offline(): boolean {
    return this.consecutiveFailures >= this.failures;
  }

  /** Runs `call` unless the breaker is open; KMIP result errors do not count as failures. */
  async run<T>(what: string, call: () => Promise<T>): Promise<T> {
    // Open: refused at once. After the cool-down (half-open) one call probes; the others are
    // refused until it is done, instead of each waiting on an upstream that may still be away.
    const probe = this.offline;
    if (probe && (this.now() < this.openUntil || this.probing)) {
      throw new KmipEdgeError('AGENT_OFFLINE', `the upstream is unreachable; ${what} is not possible offline`);
    }
    if (probe) this.probing = true;
    try {
      const result = await call();
      this.consecutiveFailures = 0;
      return result;
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      if (code.startsWith('NET_') || code === 'KMIP_OUTCOME_UNKNOWN') {
        this.consecutiveFailures++;
        if (this.offline) this.openUntil = this.now() + this.cooldownMs;
      }
      throw error;
    } finally {
      if (probe) this.probing = false;
    }
  }
}
