/**
 * A batch item the edge KMIP service answers Operation Failed, with the KMIP 1.2 §11 result
 * reason and a message safe to tell the principal (codes and names, never causes).
 */
import { isKmipEdgeError } from '../errors.ts';
import { KmipResultError } from '../kmip/message.ts';
import { ResultReason } from '../kmip/tables.generated.ts';

export class Refusal extends Error {
  constructor(readonly reason: number, message: string) {
    super(message);
  }
}

/** An upstream error that says the key server could not be reached (the breaker is open, or the transport failed). */
export function isUnreachable(error: unknown): boolean {
  return isKmipEdgeError(error) && (error.code === 'AGENT_OFFLINE' || error.code.startsWith('NET_'));
}

/** Agent errors as KMIP results for a device (PROTOCOL.md §4): their codes are safe to tell it, their causes are not. */
export function deviceRefusal(error: unknown): Refusal {
  if (error instanceof Refusal) return error;
  const code = isKmipEdgeError(error) ? error.code : 'GENERAL';
  if (code === 'KMIP_OPERATION_FAILED' && (error as { resultReason?: string }).resultReason === 'ItemNotFound') return new Refusal(ResultReason.ItemNotFound, 'no such key');
  if (code.startsWith('KEY_') || code.startsWith('LEDGER_') || code === 'AGENT_OFFLINE') return new Refusal(ResultReason.PermissionDenied, code);
  if (code === 'STORE_FULL' || code === 'STORE_WRITE_FAILED') return new Refusal(ResultReason.GeneralFailure, `${code}: the agent cannot store anything now; try again later`);
  // The upstream could not be reached for what the cache does not hold: the device may retry later.
  if (code.startsWith('NET_')) return new Refusal(ResultReason.PermissionDenied, 'AGENT_OFFLINE');
  return new Refusal(ResultReason.GeneralFailure, 'the agent could not complete the request');
}

/** Refused as if the key did not exist (a key outside the allow-list must not be told apart from one that is not there). */
export function notFound(): Refusal {
  return new Refusal(ResultReason.ItemNotFound, 'no such object');
}

/**
 * Errors as KMIP results for a local KMIP client: the key server's own refusal as it gave it;
 * the key server unreachable (for `operation`, which needed it); policy and ledger refusals with
 * their codes. Anything else is General Failure without its cause (logged by the caller).
 */
export function clientRefusal(error: unknown, operation: string): Refusal {
  if (error instanceof Refusal) return error;
  if (error instanceof KmipResultError) {
    const reason = error.resultReason === undefined ? undefined : (ResultReason as Record<string, number>)[error.resultReason];
    return new Refusal(reason ?? ResultReason.GeneralFailure, error.resultMessage ?? `${operation} failed at the key server`);
  }
  if (isUnreachable(error)) return new Refusal(ResultReason.GeneralFailure, `the key server is unreachable: ${operation} is not possible offline`);
  const code = isKmipEdgeError(error) ? error.code : 'GENERAL';
  const message = (error as Error).message;
  if (code === 'KMIP_OUTCOME_UNKNOWN') return new Refusal(ResultReason.GeneralFailure, `the key server did not answer: the ${operation} may or may not have been done there`);
  if (code === 'KMIP_MESSAGE_INVALID') return new Refusal(ResultReason.InvalidMessage, message);
  if (code === 'LEDGER_NO_USAGE_LIMITS') return new Refusal(ResultReason.IllegalOperation, message);
  if (code.startsWith('KEY_') || code.startsWith('LEDGER_')) return new Refusal(ResultReason.PermissionDenied, `${code}: ${message}`);
  if (code === 'STORE_FULL' || code === 'STORE_WRITE_FAILED') return new Refusal(ResultReason.GeneralFailure, `${code}: the agent cannot store anything now; try again later`);
  return new Refusal(ResultReason.GeneralFailure, 'the agent could not complete the request');
}
