/**
 * Put/Notify from the upstream as an operator follows them (KMIP 1.2 §5; ARCHITECTURE.md §3): the
 * listener's apply step, wrapped — `push_received` when a push arrives, `push_applied` once it is
 * durable (the listener then acknowledges it: `push_acknowledged`, or logs `push_apply_failed` when
 * it is not: the upstream gets no Success and resends). Counted by operation and outcome.
 */
import type { Push } from '../kmip/push.ts';
import type { Logger } from '../log.ts';
import type { AgentMetrics } from './agent-metrics.ts';

export function watchPushes<Outcome extends string>(log: Logger, metrics: AgentMetrics, apply: (push: Push) => Promise<Outcome>): (push: Push) => Promise<Outcome> {
  return async (push) => {
    const about = { operation: push.operation, uid: push.uniqueIdentifier, ...(push.operation === 'Put' && push.replaces !== undefined && { replaces: push.replaces }) };
    log.info({ event: 'push_received', ...about }, 'push received from the upstream');
    try {
      const outcome = await apply(push);
      metrics.pushesReceived.inc({ operation: push.operation, outcome });
      log.info({ event: 'push_applied', ...about, outcome }, 'push applied durably');
      return outcome;
    } catch (error) {
      metrics.pushesReceived.inc({ operation: push.operation, outcome: 'failed' });
      throw error; // the listener logs push_apply_failed with the reason
    }
  };
}
