/**
 * `kmip-edge device add|list|remove --data DIR` (CLI.md): provisions devices. `add` prints the
 * new device's key once — {"id","suite","key"} — for installing on the device; the agent keeps
 * it only sealed under its master key.
 */
import { parseArgs } from 'node:util';
import { dataDir } from '../agent/data-dir.ts';
import { Suite } from '../devices/frame.ts';
import { DEVICE_OPERATIONS, DeviceRegistry, type DeviceOperation, type KeyRule } from '../devices/registry.ts';
import { LevelStore } from '../store/kv-store.ts';
import { MasterKey } from '../store/master-key.ts';
import { toHex } from '../ttlv/hex.ts';
import { UsageError } from './errors.ts';

const SUITES: Record<string, Suite> = { 'aes-256-gcm': Suite.AES_256_GCM, 'chacha20-poly1305': Suite.CHACHA20_POLY1305 };
const suiteName = (suite: Suite): string => Object.entries(SUITES).find(([, s]) => s === suite)![0];

export async function runDeviceCommand(args: string[], out: (text: string) => void): Promise<number> {
  const [action, ...rest] = args;
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
  const paths = dataDir(values.data, action === 'add');
  const store = await LevelStore.open(paths.store);
  try {
    const registry = new DeviceRegistry(store, MasterKey.load(paths.masterKey));
    if (action === 'list') {
      out(JSON.stringify({ devices: (await registry.list()).map((d) => ({ ...d, suite: suiteName(d.suite) })) }) + '\n');
      return 0;
    }
    if (values.id === undefined) throw new UsageError(`device ${action} needs --id ID`);
    if (action === 'remove') {
      const removed = await registry.remove(values.id);
      out(JSON.stringify({ id: values.id, removed }) + '\n');
      return removed ? 0 : 1;
    }
    const suite = SUITES[values.suite];
    if (suite === undefined) throw new UsageError('--suite must be aes-256-gcm or chacha20-poly1305');
    const operations = values.operation as DeviceOperation[] | undefined;
    const unknown = operations?.find((op) => !(DEVICE_OPERATIONS as readonly string[]).includes(op));
    if (unknown) throw new UsageError(`--operation ${unknown}: one of ${DEVICE_OPERATIONS.join(', ')}`);
    const keys: KeyRule[] = [
      ...(values['key-uid'] ?? []).map((uniqueIdentifier) => ({ uniqueIdentifier })),
      ...(values['key-name'] ?? []).map((name) => ({ name })),
      ...(values['key-group'] ?? []).map((objectGroup) => ({ objectGroup })),
    ];
    const limits = {
      ...(values.rate !== undefined && { requestsPerSecond: Number(values.rate) }),
      ...(values['max-frame'] !== undefined && { maxFrameBytes: Number(values['max-frame']) }),
    };
    const device = await registry.add(values.id, { suite, keys, limits, ...(operations && { operations }) });
    out(JSON.stringify({ id: device.id, suite: suiteName(device.suite), key: toHex(device.key) }) + '\n');
    return 0;
  } finally {
    await store.close();
  }
}
