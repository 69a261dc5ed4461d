/**
 * End-to-end nonce-MAC at the device (ARCHITECTURE.md §6 (b), PROTOCOL.md §5): the device sets
 * its own fresh `x-Nonce` and gets the key MAC-wrapped through the agent, then checks the
 * HMAC-SHA256 with its provisioned MAC key and that the wrapped nonce is the one it set — so
 * neither the agent nor anything between it and the key server can hand the device a replayed or
 * altered key. Modify first; Add when the key carries no nonce yet. The simulator's `get-verified`.
 */
import { randomBytes } from 'node:crypto';
import { buildRequestMessage } from '../kmip/message.ts';
import { keyBlockOf, keyMaterialOf } from '../kmip/payloads.ts';
import { ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { NONCE_BYTES, nonceMacItems, verifyNonceMacGet, type NonceSetter } from '../upstream/nonce-mac.ts';
import type { DeviceRequester } from './device-requester.ts';

export type VerifiedGet =
  | { ok: true; material: Uint8Array }
  | { ok: false; error: string; detail: string | undefined };

export async function verifiedGet(device: DeviceRequester, uid: string, macUid: string, macKey: Uint8Array, options: { resendMs?: number; deadlineMs?: number } = {}): Promise<VerifiedGet> {
  const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  const ask = async (setter: NonceSetter) => (await device.request(encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, nonceMacItems(uid, macUid, nonce, setter), { batchOrderOption: true })), options)).batchItems;
  let items = await ask('modify');
  if (items[0]?.resultStatus !== ResultStatus.Success) items = await ask('add');
  const get = items[1];
  if (get?.resultStatus !== ResultStatus.Success || !get.payload) {
    const failed = get?.resultStatus === ResultStatus.Success ? items[0] : get;
    return { ok: false, error: failed?.resultReason === undefined ? 'REFUSED' : enumerationText(Tag.ResultReason, failed.resultReason), detail: failed?.resultMessage };
  }
  try {
    const got = verifyNonceMacGet(get.payload, macKey, nonce);
    return { ok: true, material: keyMaterialOf(keyBlockOf(got.object)) };
  } catch (error) {
    return { ok: false, error: (error as { code?: string }).code ?? 'GENERAL', detail: (error as Error).message };
  }
}
