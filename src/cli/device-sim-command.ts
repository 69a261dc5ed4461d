/**
 * `kmip-edge device-sim --id ID --key HEX (--mqtt URL | --serial PATH) [--prefix P] ACTION` (CLI.md): a simulated
 * device. It behaves like a real one: its counter is kept in a file (written and synced before a
 * frame leaves) and an unanswered request is resent as the same frame until answered. Prints one
 * JSON line per completed request: {"op","ok","uid","count","ms"}.
 *   ACTION: get --uid U | allocate --uid U --count N | lease --uid U   [--repeat N]
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DeviceClient, type CounterStore } from '../devices/device-client.ts';
import { Suite } from '../devices/frame.ts';
import { DeviceRequester } from '../devices/device-requester.ts';
import { MqttDevice } from '../devices/mqtt-device.ts';
import { SerialLine } from '../devices/serial-transport.ts';
import { connectMqtt } from '../devices/mqtt-transport.ts';
import { payload } from '../kmip/payloads.ts';
import { buildRequestMessage } from '../kmip/message.ts';
import { Operation, ResultStatus, Tag } from '../kmip/tables.generated.ts';
import { enumerationText } from '../kmip/vocabulary.ts';
import { encodeTtlv } from '../ttlv/encode.ts';
import { fromHex } from '../ttlv/hex.ts';
import { UsageError } from './errors.ts';

/** The counter in a small file, synced before each use (PROTOCOL.md §3). */
function fileCounters(path: string): CounterStore {
  return {
    load: () => (existsSync(path) ? BigInt(readFileSync(path, 'utf8').trim() || '0') : 0n),
    save: (counter) => {
      const fd = openSync(path, 'w', 0o600);
      try {
        writeSync(fd, `${counter}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    },
  };
}

export async function runDeviceSimCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      id: { type: 'string' }, key: { type: 'string' }, suite: { type: 'string', default: 'aes-256-gcm' },
      mqtt: { type: 'string' }, serial: { type: 'string' }, prefix: { type: 'string', default: 'kmip-edge' }, state: { type: 'string' },
      uid: { type: 'string' }, count: { type: 'string' }, repeat: { type: 'string', default: '1' }, concurrency: { type: 'string', default: '1' },
      'resend-ms': { type: 'string', default: '1000' },
    },
    allowPositionals: true,
    strict: true,
  });
  const [action] = positionals;
  if (values.id === undefined || values.key === undefined) throw new UsageError('device-sim needs --id and --key');
  if (action !== 'get' && action !== 'allocate' && action !== 'lease') throw new UsageError('device-sim ACTION is get, allocate or lease');
  if (values.uid === undefined) throw new UsageError(`${action} needs --uid`);
  if (values.concurrency !== '1') throw new UsageError('--concurrency: one request at a time per device (counters are ordered); run several simulators');
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
    const [operation, items] =
      action === 'get' ? [Operation.Get, payload.get(values.uid)]
      : action === 'lease' ? [Operation.ObtainLease, payload.obtainLease(values.uid)]
      : [Operation.GetUsageAllocation, payload.getUsageAllocation(values.uid, count!)];
    let failures = 0;
    for (let i = 0; i < repeat; i++) {
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
    return failures === 0 ? 0 : 1;
  } finally {
    await close();
  }
}
