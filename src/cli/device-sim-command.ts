/**
 * `kmip-edge device-sim --id ID (--key HEX | --key-file F) (--mqtt URL | --serial PATH) [--prefix P] ACTION` (CLI.md): a simulated
 * device. It behaves like a real one: its counter is kept in a file (written and synced before a
 * frame leaves) and an unanswered request is resent as the same frame until answered — for
 * --timeout seconds, then it gives up (exit 1) with a hint: the agent drops frames it cannot
 * authenticate without a word, so silence is all a device with the wrong key sees. Prints one
 * JSON line per completed request: {"op","ok","uid","count","ms"}.
 *   ACTION: get --uid U | allocate --uid U --count N | lease --uid U   [--repeat N --concurrency C]
 *         | get-verified --uid U --mac-uid M (--mac-key HEX | --mac-key-file F)   (end-to-end nonce-MAC, verified here)
 *         | listen [--pushes N] [--seconds S]   (relayed Put/Notify, acknowledged; one line each)
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DeviceClient, type CounterStore } from '../devices/device-client.ts';
import { Suite } from '../devices/frame.ts';
import { DeviceRequester, MAX_IN_FLIGHT } from '../devices/device-requester.ts';
import { MqttDevice } from '../devices/mqtt-device.ts';
import { SerialLine } from '../devices/serial-transport.ts';
import { connectMqtt, resolveMqttSettings } from '../devices/mqtt-transport.ts';
import { isKmipEdgeError } from '../errors.ts';
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
import { readInputLimited } from './input.ts';
import { MQTT_FLAG_OPTIONS, MQTT_FLAGS_HELP, mqttSettingsFromFlags, givenMqttFlag } from './mqtt-flags.ts';
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

export const DEVICE_SIM_USAGE = `kmip-edge device-sim --id ID (--key HEX | --key-file F) (--mqtt URL | --serial PATH) [options] ACTION
  a simulated device: its counter in a file, an unanswered request resent as the same frame
actions:
  get --uid U | allocate --uid U --count N | lease --uid U      [--repeat N] [--concurrency C]
  get-verified --uid U --mac-uid M (--mac-key HEX | --mac-key-file F)   end-to-end nonce-MAC
  listen [--pushes N] [--seconds S]                             relayed Put/Notify
options:
  --id ID                      the device id (as in kmip-edge device add)
  --key HEX                    the device key, 64 hex digits (visible in ps: prefer --key-file)
  --key-file F                 the device key from file F, or from standard input with F = -
  --mac-key HEX                get-verified: the HMAC-SHA256 key (visible in ps: prefer --mac-key-file)
  --mac-key-file F             the MAC key from file F, or from standard input with F = -
  --suite aes-256-gcm|chacha20-poly1305   the device's suite (default aes-256-gcm)
  --state F                    the counter file (default ID.counter)
  --timeout SECONDS            give up on a request (or on reaching the broker) after this long (default 10): exit 1
  --resend-ms MS               resend an unanswered request after MS (default 3000)
  --prefix P                   the MQTT topic prefix (default kmip-edge)
  --serial PATH                a serial line instead of MQTT
${MQTT_FLAGS_HELP}`;

/** What a device that hears nothing should check (the agent does not answer frames it cannot open). */
const NO_ANSWER_HINT = 'the agent drops frames it cannot authenticate without a reply, so check that this device\'s --key, --suite, --id and counter (--state) match its registration (kmip-edge device list), and that the agent is running and connected to the same broker or line';

/** A secret given as hex on the command line or, better, in a file or on standard input ("-"). */
function secretHex(flag: string, hex: string | undefined, file: string | undefined): string | undefined {
  if (hex !== undefined && file !== undefined) throw new UsageError(`device-sim takes --${flag} HEX or --${flag}-file F, not both`);
  if (file === undefined) return hex;
  try {
    return readInputLimited(file, 1024).toString('utf8').trim();
  } catch (error) {
    throw new UsageError(`--${flag}-file: ${(error as Error).message}`);
  }
}

export async function runDeviceSimCommand(args: string[], out: (text: string) => void): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    out(DEVICE_SIM_USAGE + '\n');
    return 0;
  }
  const { values, positionals } = parseArgs({
    args,
    options: {
      id: { type: 'string' }, key: { type: 'string' }, 'key-file': { type: 'string' }, suite: { type: 'string', default: 'aes-256-gcm' },
      mqtt: { type: 'string' }, ...MQTT_FLAG_OPTIONS, serial: { type: 'string' }, prefix: { type: 'string', default: 'kmip-edge' }, state: { type: 'string' },
      uid: { type: 'string' }, count: { type: 'string' }, repeat: { type: 'string', default: '1' }, concurrency: { type: 'string', default: '1' },
      'resend-ms': { type: 'string', default: '3000' }, pushes: { type: 'string', default: '1' }, seconds: { type: 'string', default: '30' },
      timeout: { type: 'string', default: '10' },
      'mac-uid': { type: 'string' }, 'mac-key': { type: 'string' }, 'mac-key-file': { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  const [action] = positionals;
  if (values['key-file'] === '-' && values['mac-key-file'] === '-') throw new UsageError('--key-file and --mac-key-file cannot both read standard input');
  const keyHex = secretHex('key', values.key, values['key-file']);
  const macKeyHex = secretHex('mac-key', values['mac-key'], values['mac-key-file']);
  if (values.id === undefined || keyHex === undefined) throw new UsageError('device-sim needs --id and --key HEX or --key-file F');
  if (action !== 'get' && action !== 'allocate' && action !== 'lease' && action !== 'listen' && action !== 'get-verified') throw new UsageError('device-sim ACTION is get, allocate, lease, get-verified or listen');
  if (action === 'get-verified' && (values['mac-uid'] === undefined || macKeyHex === undefined)) throw new UsageError('get-verified needs --mac-uid (the upstream HMAC-SHA256 key) and --mac-key-file F or --mac-key HEX (its bytes, provisioned on the device)');
  if (values.uid === undefined && action !== 'listen') throw new UsageError(`${action} needs --uid`);
  const concurrency = Number(values.concurrency);
  if (!(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= MAX_IN_FLIGHT)) throw new UsageError(`--concurrency: 1 to ${MAX_IN_FLIGHT} requests in flight (the replies the agent keeps for resends)`);
  if ((values.mqtt === undefined) === (values.serial === undefined)) throw new UsageError('device-sim needs --mqtt URL or --serial PATH');
  if (values.mqtt === undefined && givenMqttFlag(values) !== undefined) throw new UsageError(`--${givenMqttFlag(values)} is for the broker named by --mqtt URL`);
  const key = fromHex(keyHex);
  if (key.length !== 32) throw new UsageError('--key is 64 hex digits');
  if (values.suite !== 'aes-256-gcm' && values.suite !== 'chacha20-poly1305') throw new UsageError(`--suite is aes-256-gcm or chacha20-poly1305, not ${JSON.stringify(values.suite)}`);
  const suite = values.suite === 'chacha20-poly1305' ? Suite.CHACHA20_POLY1305 : Suite.AES_256_GCM;
  const timeoutSeconds = /^\d+(\.\d+)?$/.test(values.timeout) ? Number(values.timeout) : NaN;
  if (!(timeoutSeconds > 0 && timeoutSeconds <= 86_400)) throw new UsageError(`--timeout is a number of seconds, more than 0 and at most 86400, not ${JSON.stringify(values.timeout)}`);
  const timeoutMs = Math.round(timeoutSeconds * 1000);
  const resendMs = Number(values['resend-ms']);
  if (!(Number.isInteger(resendMs) && resendMs >= 1)) throw new UsageError(`--resend-ms is a whole number of milliseconds ≥ 1, not ${JSON.stringify(values['resend-ms'])}`);
  const count = values.count === undefined ? undefined : BigInt(values.count);
  if (action === 'allocate' && (count === undefined || count <= 0n)) throw new UsageError('allocate needs --count N ≥ 1');
  const repeat = Number(values.repeat);
  const mqttOptions = values.mqtt === undefined ? undefined : resolveMqttSettings(mqttSettingsFromFlags(values.mqtt, values), { clientId: `device-sim-${values.id}-${process.pid}` });

  const deviceClient = new DeviceClient(values.id, key, suite, fileCounters(values.state ?? `${values.id}.counter`));
  let device: DeviceRequester;
  let close: () => Promise<void>;
  if (mqttOptions !== undefined) {
    let client;
    try {
      client = await connectMqtt(mqttOptions, {}, { timeoutMs });
    } catch (error) {
      if (!isKmipEdgeError(error) || error.code !== 'MQTT_CONNECT_FAILED') throw error;
      process.stderr.write(`kmip-edge: ${error.message}\n`);
      return 1;
    }
    try {
      device = await MqttDevice.attach(client, deviceClient, values.prefix);
    } catch (error) {
      client.end(true);
      if (!isKmipEdgeError(error) || error.code !== 'MQTT_SUBSCRIBE_REFUSED') throw error;
      process.stderr.write(`kmip-edge: ${error.message}\n`);
      return 1;
    }
    close = async () => void client.end(true);
  } else {
    let line: SerialLine | undefined;
    const requester = new DeviceRequester(deviceClient, (frame) => line!.send(frame));
    line = await SerialLine.open(values.serial!, (frame) => requester.deliver(frame));
    device = requester;
    close = () => line!.close();
  }
  const timing = { resendMs, deadlineMs: timeoutMs };
  try {
    if (action === 'listen') return await listenForPushes(device, Number(values.pushes), Number(values.seconds), timing, out);
    if (action === 'get-verified') return await getVerified(device, values.uid!, values['mac-uid']!, fromHex(macKeyHex!), repeat, timing, out);
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
        const response = await device.request(encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation, payload: items }])), timing);
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
  } catch (error) {
    if (!isKmipEdgeError(error) || error.code !== 'DEVICE_NO_ANSWER') throw error;
    process.stderr.write(`kmip-edge: no answer from the agent within ${timeoutSeconds} s: ${NO_ANSWER_HINT}\n`);
    return 1;
  } finally {
    await close();
  }
}

/** `get-verified`: end-to-end nonce-MAC, verified here (src/devices/verified-get.ts); never prints the key. */
async function getVerified(device: DeviceRequester, uid: string, macUid: string, macKey: Uint8Array, repeat: number, timing: { resendMs: number; deadlineMs: number }, out: (text: string) => void): Promise<number> {
  let failures = 0;
  for (let i = 0; i < repeat; i++) {
    const started = performance.now();
    const result = await verifiedGet(device, uid, macUid, macKey, timing);
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
async function listenForPushes(device: DeviceRequester, pushes: number, seconds: number, timing: { resendMs: number; deadlineMs: number }, out: (text: string) => void): Promise<number> {
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
  const hello = await device.request(encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Query, payload: [] }])), timing);
  out(JSON.stringify({ op: 'hello', ok: hello.batchItems[0]?.resultStatus === ResultStatus.Success }) + '\n');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([enough.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), seconds * 1000)))]);
  clearTimeout(timer);
  await new Promise((resolve) => setTimeout(resolve, 100)); // let the last acknowledgement leave
  return timedOut ? 1 : 0;
}
