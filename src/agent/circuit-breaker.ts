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
    if (this.offline && this.now() < this.openUntil) {
      throw new KmipEdgeError('AGENT_OFFLINE', `the upstream is unreachable; ${what} is not possible offline`);
    }
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
    }
  }
}
