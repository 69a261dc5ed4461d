/**
 * `kmip-edge client add|list|remove|update --data DIR` (CLI.md wave 2, issue #16): registers the
 * local KMIP clients (tape libraries, storage arrays) that may use the agent's KMIP endpoint
 * (`run --kmip-listen`). A client is its certificate's key — `--cert FILE`, the SHA-256 of its
 * SubjectPublicKeyInfo — with allow-lists of keys and operations and its offline key pool.
 * `update` replaces the lists given and, with `--cert`, the certificate (a re-keyed client).
 * While `kmip-edge run` holds the store, the request goes to the running agent, which applies it
 * at once (./device-admin.ts).
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { dataDir } from '../agent/data-dir.ts';
import { ConfigError } from '../config/config-error.ts';
import { prepareDataFolder } from '../config/data-folder.ts';
import { readClientCertificate } from '../config/tls-files.ts';
import type { KeyRule } from '../devices/registry.ts';
import { clientCertificate, ClientRegistry, parsePoolTemplate, type ClientCertificate } from '../endpoint/client-registry.ts';
import { isKmipEdgeError } from '../errors.ts';
import { LevelStore } from '../store/kv-store.ts';
import { executeClientRequest, type ClientRequest, type ClientView } from './client-admin.ts';
import { sendClientAdmin, type DeviceAnswer } from './device-admin.ts';
import { UsageError } from './errors.ts';

export const CLIENT_OPTIONS = {
  data: { type: 'string' }, id: { type: 'string' }, cert: { type: 'string' },
  'key-uid': { type: 'string', multiple: true }, 'key-id': { type: 'string', multiple: true }, 'key-name': { type: 'string', multiple: true }, 'key-group': { type: 'string', multiple: true },
  operation: { type: 'string', multiple: true }, pool: { type: 'string', multiple: true },
  json: { type: 'boolean', default: false },
} as const;

function certificateOf(path: string): ClientCertificate {
  const { certificate, problems } = readClientCertificate(path);
  if (!certificate) throw new ConfigError('CONFIG_INVALID', problems.map((problem) => `--cert ${problem}`));
  return clientCertificate(certificate);
}

export async function runClientCommand(args: string[], out: (text: string) => void): Promise<number> {
  const [action, ...rest] = args;
  if (action !== 'add' && action !== 'list' && action !== 'remove' && action !== 'update') throw new UsageError('client needs add, list, remove or update; try kmip-edge client --help');
  const { values } = parseArgs({ args: rest, options: CLIENT_OPTIONS, strict: true });
  if (values.data === undefined) throw new UsageError(`client ${action} needs --data DIR`);
  if (action !== 'list' && values.id === undefined) throw new UsageError(`client ${action} needs --id ID`);
  if (action === 'add' && values.cert === undefined) throw new UsageError('client add needs --cert FILE: the client\'s certificate (PEM); its key identifies the client');
  if (action !== 'add' && action !== 'update') {
    for (const flag of ['cert', 'key-uid', 'key-id', 'key-name', 'key-group', 'operation', 'pool'] as const) if (values[flag] !== undefined) throw new UsageError(`--${flag} is a flag of client add and client update`);
  }
  // --key-id is the issue's name for a Unique Identifier rule; --key-uid is `device`'s: both work.
  const uids = [...(values['key-uid'] ?? []), ...(values['key-id'] ?? [])];
  const keyFlags = uids.length > 0 || values['key-name'] !== undefined || values['key-group'] !== undefined;
  const keys: KeyRule[] = [
    ...uids.map((uniqueIdentifier) => ({ uniqueIdentifier })),
    ...(values['key-name'] ?? []).map((name) => ({ name })),
    ...(values['key-group'] ?? []).map((objectGroup) => ({ objectGroup })),
  ];
  const pool = values.pool?.map(parsePoolTemplate);
  let request: ClientRequest;
  if (action === 'list') request = { action: 'client-list' };
  else if (action === 'remove') request = { action: 'client-remove', id: values.id! };
  else if (action === 'update') {
    if (!keyFlags && values.operation === undefined && pool === undefined && values.cert === undefined) throw new UsageError('client update needs what to change: --cert, --key-id, --key-name, --key-group, --operation or --pool');
    request = { action: 'client-update', id: values.id!, ...(values.cert !== undefined && { certificate: certificateOf(values.cert) }), ...(keyFlags && { keys }), ...(values.operation && { operations: values.operation }), ...(pool && { pool }) };
  } else request = { action: 'client-add', id: values.id!, certificate: certificateOf(values.cert!), keys, ...(values.operation && { operations: values.operation }), ...(pool && { pool }) };
  const { output, code } = await carryOut(values.data, request);
  if (action === 'list' && !values.json) out(table(output.clients as ClientView[]));
  else out(JSON.stringify(output) + '\n');
  return code;
}

/** `client list` for a person: one client per paragraph. */
function table(clients: ClientView[]): string {
  if (clients.length === 0) return 'no KMIP clients registered (kmip-edge client add --data DIR --id ID --cert FILE)\n';
  const rule = (key: KeyRule): string => (key.uniqueIdentifier !== undefined ? `uid ${key.uniqueIdentifier}` : key.name !== undefined ? `name ${key.name}` : `group ${key.objectGroup}`);
  return clients.map((client) => [
    `${client.id}  ${client.subject ?? ''}`,
    `  SPKI sha256  ${client.spkiSha256}`,
    `  keys         ${client.keys.length === 0 ? '(none)' : client.keys.map(rule).join(', ')}`,
    `  operations   ${client.operations.join(', ')}`,
    `  pool         ${client.pool.length === 0 ? '(none)' : client.pool.join(', ')}`,
  ].join('\n')).join('\n\n') + '\n';
}

/** On the store directly, or through the running agent that holds it (its socket in the data folder). */
async function carryOut(data: string, request: ClientRequest): Promise<DeviceAnswer> {
  if (request.action === 'client-add') prepareDataFolder(data, '--data');
  const paths = dataDir(data, request.action === 'client-add');
  // Only add makes a data folder: a mistyped --data must not leave a new store and master key behind.
  if (request.action !== 'client-add' && !existsSync(paths.store)) throw new UsageError(`no agent store in ${data}; give the agent's --data folder (client add makes a new one)`);
  let store: LevelStore;
  try {
    store = await LevelStore.open(paths.store);
  } catch (error) {
    const viaAgent = isKmipEdgeError(error, 'STORE_LOCKED') ? await sendClientAdmin(data, request) : undefined;
    if (viaAgent) return viaAgent;
    throw error;
  }
  try {
    return await executeClientRequest(new ClientRegistry(store), request);
  } finally {
    await store.close();
  }
}
