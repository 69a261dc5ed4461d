/**
 * Local KMIP client provisioning (`kmip-edge client add|list|remove|update`, issue #16) against a
 * client registry: by the command on a stopped agent's store, or by the running agent on its
 * admin socket (./device-admin.ts, the same socket as `device`), with the same answers and exit
 * codes either way. The certificate is read by the command (the agent may not be able to read
 * the operator's file); only its SubjectPublicKeyInfo digest and subject travel.
 */
import type { KeyRule } from '../devices/registry.ts';
import type { PoolTemplate } from '../edge/principal.ts';
import { formatPoolTemplate, type ClientCertificate, type ClientRecord, type ClientRegistry } from '../endpoint/client-registry.ts';
import { silentLogger, type Logger } from '../log.ts';
import type { DeviceAnswer } from './device-admin.ts';

export type ClientRequest =
  | { action: 'client-list' }
  | { action: 'client-remove'; id: string }
  | { action: 'client-add'; id: string; certificate: ClientCertificate; keys: KeyRule[]; operations?: string[]; pool?: PoolTemplate[] }
  | { action: 'client-update'; id: string; certificate?: ClientCertificate; keys?: KeyRule[]; operations?: string[]; pool?: PoolTemplate[] };

export const CLIENT_ACTIONS: readonly string[] = ['client-list', 'client-remove', 'client-add', 'client-update'];

export function isClientRequest(request: { action?: unknown }): request is ClientRequest {
  return typeof request.action === 'string' && CLIENT_ACTIONS.includes(request.action);
}

/** A client as the command prints it: the pool in its `--pool` form. */
export interface ClientView {
  id: string;
  spkiSha256: string;
  subject?: string;
  keys: readonly KeyRule[];
  operations: readonly string[];
  pool: string[];
}

export function describeClient(client: ClientRecord): ClientView {
  return { id: client.id, spkiSha256: client.spkiSha256, ...(client.subject !== undefined && { subject: client.subject }), keys: client.keys, operations: client.operations, pool: client.pool.map(formatPoolTemplate) };
}

/** Carries out one request; bad requests are KmipEdgeErrors CLIENT_INVALID / CLIENT_EXISTS (exit 2). */
export async function executeClientRequest(registry: ClientRegistry, request: ClientRequest, log: Logger = silentLogger): Promise<DeviceAnswer> {
  switch (request.action) {
    case 'client-list':
      return { output: { clients: (await registry.list()).map(describeClient) }, code: 0 };
    case 'client-remove': {
      const removed = await registry.remove(request.id);
      if (removed) log.info({ event: 'client_removed', client: request.id }, `KMIP client removed: ${request.id}`);
      return { output: { id: request.id, removed }, code: removed ? 0 : 1 };
    }
    case 'client-add': {
      const client = await registry.add(request.id, request.certificate, { keys: request.keys, ...(request.operations && { operations: request.operations }), ...(request.pool && { pool: request.pool }) });
      log.info({ event: 'client_added', client: client.id, spkiSha256: client.spkiSha256 }, `KMIP client added: ${client.id}`);
      return { output: { ...describeClient(client) }, code: 0 };
    }
    case 'client-update': {
      const client = await registry.update(request.id, {
        ...(request.certificate && { certificate: request.certificate }), ...(request.keys && { keys: request.keys }),
        ...(request.operations && { operations: request.operations }), ...(request.pool && { pool: request.pool }),
      });
      if (!client) return { output: { id: request.id, updated: false }, code: 1 };
      log.info({ event: 'client_updated', client: client.id, spkiSha256: client.spkiSha256, rekeyed: request.certificate !== undefined }, `KMIP client updated: ${client.id}`);
      return { output: { ...describeClient(client), updated: true }, code: 0 };
    }
  }
}
