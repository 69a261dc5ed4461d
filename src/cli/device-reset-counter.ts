/**
 * `kmip-edge device reset-counter --data DIR --id ID [--floor N]` (PROTOCOL.md §3.2): for a
 * device that lost its counters. Raises the device's counter floor in the agent — on the store
 * directly, or through the running agent that holds it (device-admin.ts) — and prints
 * {"id","counter","pushCounter"}: the values to provision on the device (its last up counter and
 * its last accepted push counter; for device-sim, the state file "<counter> <pushCounter>").
 */
import { parseArgs } from 'node:util';
import { dataDir } from '../agent/data-dir.ts';
import { resetDeviceCounter } from '../devices/counter-recovery.ts';
import { DeviceRegistry } from '../devices/registry.ts';
import { isKmipEdgeError, KmipEdgeError } from '../errors.ts';
import { LevelStore } from '../store/kv-store.ts';
import { MasterKey } from '../store/master-key.ts';
import { sendDeviceAdmin, type DeviceAnswer } from './device-admin.ts';
import { UsageError } from './errors.ts';

export async function runResetCounter(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parseArgs({ args, options: { data: { type: 'string' }, id: { type: 'string' }, floor: { type: 'string' } }, strict: true });
  if (values.data === undefined) throw new UsageError('device reset-counter needs --data DIR');
  if (values.id === undefined) throw new UsageError('device reset-counter needs --id ID');
  if (values.floor !== undefined && !/^\d{1,20}$/.test(values.floor)) throw new UsageError(`--floor takes a counter 0 … 2^64-1, not ${JSON.stringify(values.floor)}`);
  const { output, code } = await resetCounterIn(values.data, values.id, values.floor);
  out(JSON.stringify(output) + '\n');
  return code;
}

/** The answer of a reset on `store` (the command's, or the running agent's through its admin socket). */
export async function resetCounterAnswer(store: LevelStore | Parameters<typeof resetDeviceCounter>[0], registry: DeviceRegistry, id: string, floor: string | undefined): Promise<DeviceAnswer> {
  const reset = await resetDeviceCounter(store, id, (await registry.get(id)) !== undefined, floor === undefined ? undefined : BigInt(floor));
  return { output: { id: reset.id, counter: reset.counter.toString(), pushCounter: reset.pushCounter.toString() }, code: 0 };
}

async function resetCounterIn(data: string, id: string, floor: string | undefined): Promise<DeviceAnswer> {
  const paths = dataDir(data, false);
  let store: LevelStore;
  try {
    store = await LevelStore.open(paths.store);
  } catch (error) {
    const viaAgent = isKmipEdgeError(error, 'STORE_LOCKED') ? await sendDeviceAdmin(data, { action: 'reset-counter', id, ...(floor !== undefined && { floor }) }) : undefined;
    if (viaAgent) return viaAgent;
    throw error;
  }
  try {
    return await resetCounterAnswer(store, new DeviceRegistry(store, MasterKey.load(paths.masterKey)), id, floor);
  } catch (error) {
    if (isKmipEdgeError(error, 'DEVICE_UNKNOWN')) throw new KmipEdgeError('CLI_USAGE', `${error.message} in ${data} (kmip-edge device list --data ${data})`);
    throw error;
  } finally {
    await store.close();
  }
}
