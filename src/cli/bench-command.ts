/**
 * `kmip-edge bench` (CLI.md): each benchmark prints its result next to a baseline measured in the
 * same run, as a human table or, with --json, one JSON line per measurement. Benchmarks are a
 * separate command, never part of the test suite: the machines are shared and noisy.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './errors.ts';
import { benchTtlv } from '../bench/ttlv-bench.ts';
import { benchDevices } from '../bench/devices-bench.ts';
import { runDeviceLoad, type LoadConfig } from '../bench/device-load.ts';
import { readFileSync } from 'node:fs';
import { benchLedger } from '../bench/ledger-bench.ts';
import { benchUpstream } from '../bench/upstream-bench.ts';
import { benchOutage } from '../bench/outage-bench.ts';
import { runOutageLoad, stdinLines } from '../bench/outage-load.ts';
import { benchFirmware } from '../bench/firmware-bench.ts';
import { benchFootprint } from '../bench/footprint-bench.ts';
import { benchKmipEndpoint, runEndpointLoad, type EndpointLoadConfig } from '../bench/kmip-endpoint-bench.ts';

const NOT_YET_BUILT: Readonly<Record<string, string>> = {};

export async function runBenchCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { json: { type: 'boolean', default: false }, input: { type: 'string', multiple: true }, seconds: { type: 'string' }, keys: { type: 'string' }, devices: { type: 'string' }, rounds: { type: 'string' }, placement: { type: 'string' },
      'outage-seconds': { type: 'string' }, cut: { type: 'string' }, rate: { type: 'string' }, 'resend-ms': { type: 'string' }, clients: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  const seconds = values.seconds === undefined ? 1 : Number(values.seconds);
  if (!(seconds > 0 && seconds <= 600)) throw new UsageError('--seconds must be a number in (0, 600]');
  const keys = values.keys === undefined ? 1000 : Number(values.keys);
  if (!(Number.isInteger(keys) && keys > 0 && keys <= 100_000)) throw new UsageError('--keys must be a whole number in [1, 100000]');
  // bench devices --devices 1,100,1000: the device counts to measure.
  const deviceCounts = values.devices === undefined ? undefined : values.devices.split(',').map(Number);
  if (deviceCounts?.some((n) => !(Number.isInteger(n) && n > 0 && n <= 10_000))) throw new UsageError('--devices takes counts from 1 to 10000, comma-separated');
  const rounds = values.rounds === undefined ? undefined : Number(values.rounds);
  if (rounds !== undefined && !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 20)) throw new UsageError('--rounds must be a whole number in [1, 20]');
  if (values.placement !== undefined && values.placement !== 'split' && values.placement !== 'shared') throw new UsageError('--placement is split or shared');
  const outage = outageOptions(positionals, values);
  // bench kmip-endpoint --clients 1,16: the numbers of concurrent TLS clients.
  const clientCounts = values.clients === undefined ? undefined : values.clients.split(',').map(Number);
  if (clientCounts?.some((n) => !(Number.isInteger(n) && n > 0 && n <= 256))) throw new UsageError('--clients takes counts from 1 to 256, comma-separated');
  const names = positionals.length > 0 ? positionals : ['ttlv', 'upstream', 'ledger', 'devices', ...Object.keys(NOT_YET_BUILT)];
  let status = 0;
  for (const name of names) {
    if (name === 'devices-load') {
      // Internal: the load generator process of `bench devices` (configuration on stdin).
      const config = JSON.parse(readFileSync(0, 'utf8')) as LoadConfig;
      out(JSON.stringify(await runDeviceLoad(config)) + '\n');
    } else if (name === 'outage-load') {
      // Internal: the devices of `bench outage` (configuration and phases on stdin).
      await runOutageLoad(stdinLines(), out);
    } else if (name === 'kmip-endpoint-load') {
      // Internal: the TLS clients of `bench kmip-endpoint` (configuration on stdin).
      await runEndpointLoad(JSON.parse(readFileSync(0, 'utf8')) as EndpointLoadConfig, out);
    } else if (name === 'kmip-endpoint') {
      await benchKmipEndpoint({ seconds: values.seconds === undefined ? 3 : seconds, json: values.json, out, ...(clientCounts && { counts: clientCounts }), ...(rounds && { rounds }), ...(values.placement && { placement: values.placement as 'split' | 'shared' }) });
    } else if (name === 'outage') {
      await benchOutage({ ...outage!, json: values.json, out });
    } else if (name === 'ttlv') {
      await benchTtlv({ inputs: values.input ?? [], seconds, json: values.json, out });
    } else if (name === 'devices') {
      await benchDevices({ seconds, json: values.json, out, ...(deviceCounts && { counts: deviceCounts }), ...(rounds && { rounds }), ...(values.placement && { placement: values.placement as 'split' | 'shared' }) });
    } else if (name === 'ledger') {
      await benchLedger({ seconds, json: values.json, out });
    } else if (name === 'upstream') {
      await benchUpstream({ keys, json: values.json, out });
    } else if (name === 'footprint') {
      // Defaults from issue #15: 10,000 cached keys, 1,000 devices; --devices takes one count here.
      if (deviceCounts !== undefined && deviceCounts.length !== 1) throw new UsageError('bench footprint takes one --devices count');
      await benchFootprint({ keys: values.keys === undefined ? 10_000 : keys, devices: deviceCounts?.[0] ?? 1000, rounds: rounds ?? 5, json: values.json, out });
    } else if (name === 'firmware') {
      await benchFirmware({ seconds, json: values.json, out });
    } else if (name in NOT_YET_BUILT) {
      process.stderr.write(`bench ${name}: not built yet — it measures ${NOT_YET_BUILT[name]}\n`);
      if (positionals.length > 0) status = 1;
    } else {
      throw new UsageError(`unknown benchmark ${JSON.stringify(name)}: ttlv, upstream, ledger, devices, outage, firmware, footprint or kmip-endpoint`);
    }
  }
  return status;
}

/**
 * `bench outage` flags: --devices N (one count, default 1000), --seconds S for the phases with the
 * upstream up (default 30), --outage-seconds S (default 60), --cut refuse|blackhole (default
 * refuse), --rate R requests per second per device (default 1), --resend-ms M a device's resend
 * interval (default 5000). Checked before anything starts.
 */
function outageOptions(positionals: string[], values: { devices?: string | undefined; seconds?: string | undefined; 'outage-seconds'?: string | undefined; cut?: string | undefined; rate?: string | undefined; 'resend-ms'?: string | undefined }): { devices: number; seconds: number; outageSeconds: number; cut: 'refuse' | 'blackhole'; rate: number; resendMs: number } | undefined {
  if (!positionals.includes('outage')) {
    for (const flag of ['outage-seconds', 'cut', 'rate', 'resend-ms'] as const) if (values[flag] !== undefined) throw new UsageError(`--${flag} is a flag of bench outage`);
    return undefined;
  }
  const devices = values.devices === undefined ? 1000 : Number(values.devices);
  if (!(Number.isInteger(devices) && devices >= 1 && devices <= 10_000)) throw new UsageError('bench outage: --devices takes one count from 1 to 10000');
  const seconds = values.seconds === undefined ? 30 : Number(values.seconds);
  const outageSeconds = values['outage-seconds'] === undefined ? 60 : Number(values['outage-seconds']);
  if (!(outageSeconds > 0 && outageSeconds <= 86_400)) throw new UsageError('--outage-seconds must be a number in (0, 86400]');
  const cut = values.cut ?? 'refuse';
  if (cut !== 'refuse' && cut !== 'blackhole') throw new UsageError('--cut is refuse (connections refused) or blackhole (accepted, never answered)');
  const rate = values.rate === undefined ? 1 : Number(values.rate);
  if (!(rate > 0 && rate <= 100)) throw new UsageError('--rate (requests per second per device) must be a number in (0, 100]');
  const resendMs = values['resend-ms'] === undefined ? 5000 : Number(values['resend-ms']);
  if (!(Number.isInteger(resendMs) && resendMs >= 50 && resendMs <= 60_000)) throw new UsageError('--resend-ms must be a whole number of milliseconds in [50, 60000]');
  return { devices, seconds, outageSeconds, cut, rate, resendMs };
}
