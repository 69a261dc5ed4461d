/**
 * `kmip-edge run` (CLI.md): the agent process — the composition root. Wires the upstream client
 * (mutual TLS), the store, key cache and ledger (agent core), the device registry and service,
 * the MQTT and serial transports, and the Put/Notify listener whose pushes are applied, then
 * acknowledged, then relayed to the devices concerned; prints {"ready":true,…} on stdout when serving; renews
 * leases before they end; on SIGTERM stops taking frames, lets the store drain, and exits 0.
 * Logs are JSON lines on stderr.
 */
import { parseArgs } from 'node:util';
import { AgentCore } from '../agent/agent-core.ts';
import { DeviceService } from '../devices/device-service.ts';
import { startEmbeddedBroker } from '../devices/embedded-broker.ts';
import { agentClientId, MqttDeviceTransport, resolveMqttSettings, type MqttConnectOptions } from '../devices/mqtt-transport.ts';
import { DeviceRegistry } from '../devices/registry.ts';
import { startSerialTransport } from '../devices/serial-transport.ts';
import { PushListener } from '../inbound/push-listener.ts';
import { createLogger, pino } from '../log.ts';
import { parseHostPort, readPem } from '../net/tls-options.ts';
import { TlsPool } from '../net/tls-pool.ts';
import { KmipClient } from '../upstream/client.ts';
import { serveDeviceAdmin } from './device-admin.ts';
import { UsageError } from './errors.ts';
import { givenMqttFlag, MQTT_FLAG_OPTIONS, mqttSettingsFromFlags } from './mqtt-flags.ts';

/** Renew a lease this long before it ends, checking this often. */
const RENEW_MARGIN_SECONDS = 120n;
const RENEW_EVERY_MS = 30_000;

export async function runAgentCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' }, data: { type: 'string' },
      upstream: { type: 'string' }, 'upstream-ca': { type: 'string' }, 'upstream-cert': { type: 'string' }, 'upstream-key': { type: 'string' },
      'upstream-server-name': { type: 'string' },
      mqtt: { type: 'string' }, ...MQTT_FLAG_OPTIONS, 'embedded-broker': { type: 'string' }, 'mqtt-prefix': { type: 'string', default: 'kmip-edge' }, serial: { type: 'string', multiple: true },
      'push-listen': { type: 'string' }, 'push-cert': { type: 'string' }, 'push-key': { type: 'string' }, 'push-ca': { type: 'string' },
      'push-peer-cert': { type: 'string' }, 'push-peer-name': { type: 'string' },
      'nonce-mac-key': { type: 'string' }, 'nonce-mac-for': { type: 'string', multiple: true },
      metrics: { type: 'string' }, 'log-level': { type: 'string', default: 'info' },
    },
    strict: true,
  });
  if (values.config !== undefined) throw new UsageError('--config: configuration files are not built yet; use the flags');
  if (values.metrics !== undefined) throw new UsageError('--metrics: metrics are not built yet');
  if (values.data === undefined) throw new UsageError('run needs --data DIR');
  for (const flag of ['upstream', 'upstream-ca', 'upstream-cert', 'upstream-key'] as const) {
    if (values[flag] === undefined) throw new UsageError(`run needs --${flag}`);
  }
  if (values.mqtt === undefined && values['embedded-broker'] === undefined && (values.serial ?? []).length === 0) throw new UsageError('run needs --mqtt URL, --embedded-broker HOST:PORT or --serial PATH for its devices');
  if (values.mqtt !== undefined && values['embedded-broker'] !== undefined) throw new UsageError('--mqtt names an external broker, --embedded-broker starts one: not both');
  if (values['push-listen'] !== undefined) {
    for (const flag of ['push-cert', 'push-key', 'push-ca'] as const) if (values[flag] === undefined) throw new UsageError(`--push-listen needs --${flag}`);
  }
  if (values.mqtt === undefined && givenMqttFlag(values) !== undefined) throw new UsageError(`--${givenMqttFlag(values)} is for the broker named by --mqtt URL`);
  const mqttOptions = values.mqtt === undefined ? undefined : resolveMqttSettings(mqttSettingsFromFlags(values.mqtt, values), { clientId: agentClientId(values.data), persistentSession: true });
  const embedded = values['embedded-broker'] === undefined ? undefined : parseHostPort(values['embedded-broker'], 1883);

  const log = createLogger({ level: values['log-level'] }, pino.destination(2));
  const client = new KmipClient({
    transport: new TlsPool({
      ...parseHostPort(values.upstream!),
      ca: readPem(values['upstream-ca']!, 'upstream CA'),
      cert: readPem(values['upstream-cert']!, 'client certificate'),
      key: readPem(values['upstream-key']!, 'client key'),
      ...(values['upstream-server-name'] !== undefined && { serverName: values['upstream-server-name'] }),
    }),
  });
  const perKey: Record<string, string> = {};
  for (const pair of values['nonce-mac-for'] ?? []) {
    const [key, mac] = pair.split('=');
    if (!key || !mac) throw new UsageError(`--nonce-mac-for takes KEY_UID=MAC_KEY_UID, not ${JSON.stringify(pair)}`);
    perKey[key] = mac;
  }
  const nonceMac = values['nonce-mac-key'] !== undefined || Object.keys(perKey).length > 0 ? { ...(values['nonce-mac-key'] !== undefined && { defaultMacKey: values['nonce-mac-key'] }), perKey } : undefined;
  const agent = await AgentCore.open({ data: values.data, client, log, ...(nonceMac && { nonceMac }) });
  const registry = new DeviceRegistry(agent.store, agent.masterKey);
  const service = new DeviceService(agent, registry, agent.store, log);
  const closers: (() => Promise<void>)[] = [];
  let pushListener: PushListener | undefined;
  let mqtt: MqttConnectOptions | undefined = mqttOptions;
  let transport: MqttDeviceTransport | undefined;
  try {
    if (embedded) {
      const broker = await startEmbeddedBroker(embedded.host, embedded.port);
      closers.push(() => broker.close());
      mqtt = { host: broker.host, port: broker.port, clientId: agentClientId(values.data), persistentSession: true };
    }
    if (mqtt) {
      // A broker down at start is retried in the background (logged); the ready line says which.
      const started = await MqttDeviceTransport.start(mqtt, (frame, id, send) => service.handle(frame, id, send), values['mqtt-prefix'], { log, wait: embedded ? 'connected' : 'first-attempt' });
      transport = started;
      service.relay.defaultRoute = (id) => (frame) => started.sendTo(id, frame);
      closers.push(() => started.close());
    }
    for (const path of values.serial ?? []) {
      const line = await startSerialTransport(path, (frame, send) => service.handle(frame, undefined, send));
      closers.push(() => line.close());
    }
    // `kmip-edge device add|list|remove` while this process holds the store.
    const admin = await serveDeviceAdmin(values.data, registry, (id) => service.forget(id));
    closers.push(() => new Promise<void>((resolve) => admin.close(() => resolve())));
    if (values['push-listen'] !== undefined) {
      const upstream = parseHostPort(values.upstream!);
      pushListener = await PushListener.start({
        ...parseHostPort(values['push-listen'], 0),
        ca: readPem(values['push-ca']!, 'push CA'), cert: readPem(values['push-cert']!, 'push listener certificate'), key: readPem(values['push-key']!, 'push listener key'),
        // The registered upstream: a pinned certificate, or else a certificate valid for the upstream's name.
        upstream: values['push-peer-cert'] !== undefined ? { certificate: readPem(values['push-peer-cert'], 'pinned upstream certificate') } : { hostName: values['push-peer-name'] ?? values['upstream-server-name'] ?? upstream.host },
        apply: (push) => service.applyAndRelay(push),
        log,
      });
      closers.push(() => pushListener!.close());
    }
  } catch (error) {
    for (const close of closers.reverse()) await close();
    await agent.close();
    await client.close();
    throw error;
  }
  await agent.prunePushRecords();
  const resumed = await service.relay.resume();
  const renewal = setInterval(() => void agent.renewLeases(RENEW_MARGIN_SECONDS).then((renewed) => renewed.length > 0 && log.info({ renewed }, 'leases renewed')), RENEW_EVERY_MS);
  // Before the ready line: whoever reads it may stop the agent at once.
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  out(JSON.stringify({ ready: true, data: values.data, mqtt: mqtt ? `${mqtt.tls ? 'mqtts' : 'mqtt'}://${mqtt.host}:${mqtt.port}` : null, mqttState: transport?.state ?? null, serial: values.serial ?? [], pushListen: pushListener ? pushListener.port : null }) + '\n');
  log.info({ mqtt: mqtt && `${mqtt.host}:${mqtt.port}`, embeddedBroker: embedded !== undefined, serial: values.serial, pushListen: pushListener?.port, outboxesResumed: resumed }, 'agent serving');
  await stopped;
  clearInterval(renewal);
  service.relay.close();
  for (const close of closers.reverse()) await close(); // no more frames in
  await service.close(); // writes the counters still held back
  await agent.close(); // waits for the store's queued synced writes
  await client.close();
  log.info('agent stopped');
  return 0;
}
