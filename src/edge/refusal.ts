/**
 * A batch item the edge KMIP service answers Operation Failed, with the KMIP 1.2 §11 result
 * reason and a message safe to tell the principal (codes and names, never causes).
 */
import { isKmipEdgeError } from '../errors.ts';
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
