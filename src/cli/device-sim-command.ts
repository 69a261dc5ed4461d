/**
 * `kmip-edge device-sim --id ID --key HEX (--mqtt URL | --serial PATH) [--prefix P] ACTION` (CLI.md): a simulated
 * device. It behaves like a real one: its counter is kept in a file (written and synced before a
 * frame leaves) and an unanswered request is resent as the same frame until answered. Prints one
 * JSON line per completed request: {"op","ok","uid","count","ms"}.
 *   ACTION: get --uid U | allocate --uid U --count N | lease --uid U   [--repeat N --concurrency C]
 *         | get-verified --uid U --mac-uid M --mac-key HEX   (end-to-end nonce-MAC, verified here)
 *         | listen [--pushes N] [--seconds S]   (relayed Put/Notify, acknowledged; one line each)
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DeviceClient, type CounterStore } from '../devices/device-client.ts';
import { Suite } from '../devices/frame.ts';
import { DeviceRequester, MAX_IN_FLIGHT } from '../devices/device-requester.ts';
import { MqttDevice } from '../devices/mqtt-device.ts';
import { SerialLine } from '../devices/serial-transport.ts';
import { connectMqtt } from '../devices/mqtt-transport.ts';
import { payload } from '../kmip/payloads.ts';
import { buildRequestMessage } from '../kmip/message.ts';
import { Operation, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { readAttribute } from '../kmip/attributes.ts';
import { findChildren, optionalValue } from '../kmip/tree.ts';
import { ItemType } from '../ttlv/item.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { fromHex } from '../ttlv/hex.ts';
import { UsageError } from './errors.ts';
import { verifiedGet } from '../devices/verified-get.ts';

/**
 * The counters in a small file — "<up counter> <last push counter>" — written and synced before
 * each use (PROTOCOL.md §3).
 */
function fileCounters(path: string): CounterStore {
  const read = (): [bigint, bigint] => {
    const [up = '0', push = '0'] = existsSync(path) ? readFileSync(path, 'utf8').trim().split(/\s+/) : [];
    return [BigInt(up), BigInt(push)];
  };
  const write = (up: bigint, push: bigint) => {
    const fd = openSync(path, 'w', 0o600);
    try {
      writeSync(fd, `${up} ${push}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  };
  return {
    load: () => read()[0],
    save: (counter) => write(counter, read()[1]),
    loadPush: () => read()[1],
    savePush: (counter) => write(read()[0], counter),
  };
}

export async function runDeviceSimCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      id: { type: 'string' }, key: { type: 'string' }, suite: { type: 'string', default: 'aes-256-gcm' },
      mqtt: { type: 'string' }, serial: { type: 'string' }, prefix: { type: 'string', default: 'kmip-edge' }, state: { type: 'string' },
      uid: { type: 'string' }, count: { type: 'string' }, repeat: { type: 'string', default: '1' }, concurrency: { type: 'string', default: '1' },
      'resend-ms': { type: 'string', default: '1000' }, pushes: { type: 'string', default: '1' }, seconds: { type: 'string', default: '30' },
      'mac-uid': { type: 'string' }, 'mac-key': { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  const [action] = positionals;
  if (values.id === undefined || values.key === undefined) throw new UsageError('device-sim needs --id and --key');
  if (action !== 'get' && action !== 'allocate' && action !== 'lease' && action !== 'listen' && action !== 'get-verified') throw new UsageError('device-sim ACTION is get, allocate, lease, get-verified or listen');
  if (action === 'get-verified' && (values['mac-uid'] === undefined || values['mac-key'] === undefined)) throw new UsageError('get-verified needs --mac-uid (the upstream HMAC-SHA256 key) and --mac-key HEX (its bytes, provisioned on the device)');
  if (values.uid === undefined && action !== 'listen') throw new UsageError(`${action} needs --uid`);
  const concurrency = Number(values.concurrency);
  if (!(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= MAX_IN_FLIGHT)) throw new UsageError(`--concurrency: 1 to ${MAX_IN_FLIGHT} requests in flight (the replies the agent keeps for resends)`);
  if ((values.mqtt === undefined) === (values.serial === undefined)) throw new UsageError('device-sim needs --mqtt URL or --serial PATH');
  const key = fromHex(values.key);
  if (key.length !== 32) throw new UsageError('--key is 64 hex digits');
  const suite = values.suite === 'chacha20-poly1305' ? Suite.CHACHA20_POLY1305 : Suite.AES_256_GCM;
  const count = values.count === undefined ? undefined : BigInt(values.count);
  if (action === 'allocate' && (count === undefined || count <= 0n)) throw new UsageError('allocate needs --count N ≥ 1');
  const repeat = Number(values.repeat);

  const deviceClient = new DeviceClient(values.id, key, suite, fileCounters(values.state ?? `${values.id}.counter`));
  let device: DeviceRequester;
  let close: () => Promise<void>;
  if (values.mqtt !== undefined) {
    const url = new URL(values.mqtt);
    const client = await connectMqtt({ host: url.hostname, port: Number(url.port || 1883), clientId: `device-sim-${values.id}-${process.pid}` });
    device = await MqttDevice.attach(client, deviceClient, values.prefix);
    close = async () => void client.end(true);
  } else {
    let line: SerialLine | undefined;
    const requester = new DeviceRequester(deviceClient, (frame) => line!.send(frame));
    line = await SerialLine.open(values.serial!, (frame) => requester.deliver(frame));
    device = requester;
    close = () => line!.close();
  }
  try {
    if (action === 'listen') return await listenForPushes(device, Number(values.pushes), Number(values.seconds), Number(values['resend-ms']), out);
    if (action === 'get-verified') return await getVerified(device, values.uid!, values['mac-uid']!, fromHex(values['mac-key']!), repeat, Number(values['resend-ms']), out);
    const [operation, items] =
      action === 'get' ? [Operation.Get, payload.get(values.uid!)]
      : action === 'lease' ? [Operation.ObtainLease, payload.obtainLease(values.uid!)]
      : [Operation.GetUsageAllocation, payload.getUsageAllocation(values.uid!, count!)];
    let failures = 0;
    let remaining = repeat;
    // `concurrency` requests in flight, each with its own counter (PROTOCOL.md §3).
    await Promise.all(Array.from({ length: Math.min(concurrency, repeat) }, async () => {
      while (remaining > 0) {
        remaining--;
        const started = performance.now();
        const response = await device.request(encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation, payload: items }])), { resendMs: Number(values['resend-ms']) });
        const item = response.batchItems[0]!;
        const ok = item.resultStatus === ResultStatus.Success;
        if (!ok) failures++;
        out(JSON.stringify({
          op: action, ok, uid: values.uid, ...(count !== undefined && { count: Number(count) }), ms: Number((performance.now() - started).toFixed(2)),
          ...(!ok && { resultReason: item.resultReason === undefined ? undefined : enumerationText(Tag.ResultReason, item.resultReason), resultMessage: item.resultMessage }),
        }) + '\n');
      }
    }));
    return failures === 0 ? 0 : 1;
  } finally {
    await close();
  }
}

/** `get-verified`: end-to-end nonce-MAC, verified here (src/devices/verified-get.ts); never prints the key. */
async function getVerified(device: DeviceRequester, uid: string, macUid: string, macKey: Uint8Array, repeat: number, resendMs: number, out: (text: string) => void): Promise<number> {
  let failures = 0;
  for (let i = 0; i < repeat; i++) {
    const started = performance.now();
    const result = await verifiedGet(device, uid, macUid, macKey, { resendMs });
    if (!result.ok) failures++;
    const shown = result.ok ? { ok: true, verified: true, bytes: result.material.length } : { ok: false, error: result.error, detail: result.detail };
    out(JSON.stringify({ op: 'get-verified', uid, ...shown, ms: Number((performance.now() - started).toFixed(2)) }) + '\n');
  }
  return failures === 0 ? 0 : 1;
}

/**
 * `listen`: the device announces itself (a Query, as a device does when it comes back), then
 * acknowledges relayed Put/Notify, printing one line each — names and attributes, never key
 * material — until `pushes` arrived (exit 0) or `seconds` passed (exit 1).
 */
async function listenForPushes(device: DeviceRequester, pushes: number, seconds: number, resendMs: number, out: (text: string) => void): Promise<number> {
  let received = 0;
  let done!: () => void;
  const enough = new Promise<void>((resolve) => (done = resolve));
  device.onPush = (request) => {
    for (const item of request.batchItems) {
      const operation = enumerationText(Tag.Operation, item.operation);
      const uid = optionalValue(item.payload, Tag.UniqueIdentifier, ItemType.TextString);
      const replaces = optionalValue(item.payload, Tag.ReplacedUniqueIdentifier, ItemType.TextString);
      const attributes = findChildren(item.payload, Tag.Attribute).map(readAttribute).map((a) => a.name);
      out(JSON.stringify({ op: 'push', ok: true, operation, uid, ...(replaces !== undefined && { replaces }), attributes }) + '\n');
    }
    if (++received >= pushes) done();
  };
  const hello = await device.request(encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Query, payload: [] }])), { resendMs });
  out(JSON.stringify({ op: 'hello', ok: hello.batchItems[0]?.resultStatus === ResultStatus.Success }) + '\n');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([enough.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), seconds * 1000)))]);
  clearTimeout(timer);
  await new Promise((resolve) => setTimeout(resolve, 100)); // let the last acknowledgement leave
  return timedOut ? 1 : 0;
}
