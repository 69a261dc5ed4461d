/**
 * `kmip-edge device add|list|remove|update --data DIR` (CLI.md): provisions devices. `add` prints
 * the new device's key once — {"id","suite","key"} — for installing on the device; the agent keeps
 * it only sealed under its master key. `update` replaces a device's allow-lists or limits and
 * keeps its key. While `kmip-edge run` holds the store, the request goes to
 * the running agent (./device-admin.ts), which applies it at once.
 */
import { parseArgs } from 'node:util';
import { dataDir } from '../agent/data-dir.ts';
import { DeviceRegistry, type DeviceLimits, type DeviceOperation, type KeyRule } from '../devices/registry.ts';
import { isKmipEdgeError } from '../errors.ts';
import { LevelStore } from '../store/kv-store.ts';
import { MasterKey } from '../store/master-key.ts';
import { executeDeviceRequest, sendDeviceAdmin, type DeviceAnswer, type DeviceRequest } from './device-admin.ts';
import { UsageError } from './errors.ts';
import { prepareDataFolder } from '../config/data-folder.ts';
import { runResetCounter } from './device-reset-counter.ts';

export const DEVICE_OPTIONS = {
  data: { type: 'string' }, id: { type: 'string' }, suite: { type: 'string', default: 'aes-256-gcm' },
  'key-uid': { type: 'string', multiple: true }, 'key-name': { type: 'string', multiple: true }, 'key-group': { type: 'string', multiple: true },
  operation: { type: 'string', multiple: true },
  rate: { type: 'string' }, 'max-frame': { type: 'string' },
} as const;

export async function runDeviceCommand(args: string[], out: (text: string) => void): Promise<number> {
  const [action, ...rest] = args;
  if (action === 'reset-counter') return runResetCounter(rest, out);
  const { values } = parseArgs({
    args: rest,
    options: DEVICE_OPTIONS,
    strict: true,
  });
  if (action !== 'add' && action !== 'list' && action !== 'remove' && action !== 'update') throw new UsageError('device needs add, list, remove or update; try kmip-edge device --help');
  if (values.data === undefined) throw new UsageError(`device ${action} needs --data DIR`);
  if (action !== 'list' && values.id === undefined) throw new UsageError(`device ${action} needs --id ID`);
  const keyFlags = values['key-uid'] !== undefined || values['key-name'] !== undefined || values['key-group'] !== undefined;
  const keys: KeyRule[] = [
    ...(values['key-uid'] ?? []).map((uniqueIdentifier) => ({ uniqueIdentifier })),
    ...(values['key-name'] ?? []).map((name) => ({ name })),
    ...(values['key-group'] ?? []).map((objectGroup) => ({ objectGroup })),
  ];
  const limits: Partial<DeviceLimits> = {
    ...(values.rate !== undefined && { requestsPerSecond: Number(values.rate) }),
    ...(values['max-frame'] !== undefined && { maxFrameBytes: Number(values['max-frame']) }),
  };
  let request: DeviceRequest;
  if (action === 'list') request = { action };
  else if (action === 'remove') request = { action, id: values.id! };
  else if (action === 'update') {
    if (!keyFlags && values.operation === undefined && Object.keys(limits).length === 0) throw new UsageError('device update needs what to change: --key-uid, --key-name, --key-group, --operation, --rate or --max-frame');
    request = { action, id: values.id!, ...(keyFlags && { keys }), ...(values.operation && { operations: values.operation as DeviceOperation[] }), limits };
  } else request = { action, id: values.id!, suite: values.suite, keys, ...(values.operation && { operations: values.operation as DeviceOperation[] }), limits };
  const { output, code } = await carryOut(values.data, request);
  out(JSON.stringify(output) + '\n');
  return code;
}

/** On the store directly, or through the running agent that holds it (its socket in the data folder). */
async function carryOut(data: string, request: DeviceRequest): Promise<DeviceAnswer> {
  if (request.action === 'add') prepareDataFolder(data, '--data');
  const paths = dataDir(data, request.action === 'add');
  let store: LevelStore;
  try {
    store = await LevelStore.open(paths.store);
  } catch (error) {
    const viaAgent = isKmipEdgeError(error, 'STORE_LOCKED') ? await sendDeviceAdmin(data, request) : undefined;
    if (viaAgent) return viaAgent;
    throw error;
  }
  try {
    return await executeDeviceRequest(new DeviceRegistry(store, MasterKey.load(paths.masterKey)), request);
  } finally {
    await store.close();
  }
}
