/**
 * `kmip-edge device add|list|remove --data DIR` (CLI.md): provisions devices. `add` prints the
 * new device's key once — {"id","suite","key"} — for installing on the device; the agent keeps
 * it only sealed under its master key. While `kmip-edge run` holds the store, the request goes to
 * the running agent (./device-admin.ts), which applies it at once.
 */
import { parseArgs } from 'node:util';
import { dataDir } from '../agent/data-dir.ts';
import { DeviceRegistry, type DeviceOperation } from '../devices/registry.ts';
import { isKmipEdgeError } from '../errors.ts';
import { LevelStore } from '../store/kv-store.ts';
import { MasterKey } from '../store/master-key.ts';
import { executeDeviceRequest, sendDeviceAdmin, type DeviceAnswer, type DeviceRequest } from './device-admin.ts';
import { UsageError } from './errors.ts';
import { runResetCounter } from './device-reset-counter.ts';

export async function runDeviceCommand(args: string[], out: (text: string) => void): Promise<number> {
  const [action, ...rest] = args;
  if (action === 'reset-counter') return runResetCounter(rest, out);
  const { values } = parseArgs({
    args: rest,
    options: {
      data: { type: 'string' }, id: { type: 'string' }, suite: { type: 'string', default: 'aes-256-gcm' },
      'key-uid': { type: 'string', multiple: true }, 'key-name': { type: 'string', multiple: true }, 'key-group': { type: 'string', multiple: true },
      operation: { type: 'string', multiple: true },
      rate: { type: 'string' }, 'max-frame': { type: 'string' },
    },
    strict: true,
  });
  if (action !== 'add' && action !== 'list' && action !== 'remove') throw new UsageError('device needs add, list or remove');
  if (values.data === undefined) throw new UsageError(`device ${action} needs --data DIR`);
  if (action !== 'list' && values.id === undefined) throw new UsageError(`device ${action} needs --id ID`);
  const request: DeviceRequest = action === 'list' ? { action } : action === 'remove' ? { action, id: values.id! } : {
    action, id: values.id!, suite: values.suite,
    keys: [
      ...(values['key-uid'] ?? []).map((uniqueIdentifier) => ({ uniqueIdentifier })),
      ...(values['key-name'] ?? []).map((name) => ({ name })),
      ...(values['key-group'] ?? []).map((objectGroup) => ({ objectGroup })),
    ],
    ...(values.operation && { operations: values.operation as DeviceOperation[] }),
    limits: {
      ...(values.rate !== undefined && { requestsPerSecond: Number(values.rate) }),
      ...(values['max-frame'] !== undefined && { maxFrameBytes: Number(values['max-frame']) }),
    },
  };
  const { output, code } = await carryOut(values.data, request);
  out(JSON.stringify(output) + '\n');
  return code;
}

/** On the store directly, or through the running agent that holds it (its socket in the data folder). */
async function carryOut(data: string, request: DeviceRequest): Promise<DeviceAnswer> {
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
