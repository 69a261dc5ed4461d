/**
 * `kmip-edge run` (CLI.md): the agent process — the composition root, in four steps:
 *   1. parse the flags (../config/flags.ts);
 *   2. merge them over the configuration file into one typed effective configuration
 *      (../config/loader.ts, ../config/schema.ts);
 *   3. startup checks: the data folder, every certificate and key (../config/tls-files.ts) —
 *      an operator error is one line per problem and exit 2, before anything starts;
 *   4. wire the parts: the upstream client (mutual TLS), the store, key cache and ledger (agent
 *      core), the device registry and service, the MQTT and serial transports, the Put/Notify
 *      listener whose pushes are applied, then acknowledged, then relayed to the devices, and the
 *      local KMIP endpoint (`--kmip-listen`): the edge KMIP service's second door, for the
 *      registered local clients (`kmip-edge client add`).
 * Prints {"ready":true,…,"upstream":"online"|"offline"} on stdout when serving (an unreachable
 * upstream is allowed: devices are served from the cache, and the reason is logged); renews leases
 * before they end; SIGHUP reloads what can change without a restart (../config/reload.ts); on
 * SIGTERM stops taking frames, lets the store drain, and exits 0. Logs are JSON lines on stderr.
 */
import { statSync } from 'node:fs';
import { isKmipEdgeError } from '../errors.ts';
import { createServer } from 'node:net';
import { AgentCore } from '../agent/agent-core.ts';
import { ConfigError } from '../config/config-error.ts';
import { prepareDataFolder } from '../config/data-folder.ts';
import { parseRunFlags } from '../config/flags.ts';
import { listening } from '../config/listen-error.ts';
import { fieldName, loadAgentConfig, type ConfigSources } from '../config/loader.ts';
import { planReload } from '../config/reload.ts';
import type { AgentConfig } from '../config/schema.ts';
import { checkPinnedCertificate, checkTlsFiles } from '../config/tls-files.ts';
import { DeviceService } from '../devices/device-service.ts';
import { startEmbeddedBroker } from '../devices/embedded-broker.ts';
import { agentClientId, MqttDeviceTransport, readMqttPassword, resolveMqttSettings, type MqttConnectOptions, type MqttSettings } from '../devices/mqtt-transport.ts';
import { DeviceRegistry } from '../devices/registry.ts';
import { startSerialTransport } from '../devices/serial-transport.ts';
import { UpstreamPeers } from '../agent/upstream-peers.ts';
import { PushListener, type LearnedUpstream } from '../inbound/push-listener.ts';
import { createLogger, logDestination, type Logger } from '../log.ts';
import { AgentWatch } from '../metrics/agent-watch.ts';
import { parseHostPort, readPem } from '../net/tls-options.ts';
import { TlsPool } from '../net/tls-pool.ts';
import { KmipClient } from '../upstream/client.ts';
import { guardProcess } from '../process-guard.ts';
import { ClientRegistry } from '../endpoint/client-registry.ts';
import { KmipListener } from '../endpoint/kmip-listener.ts';
import { EdgeKmipService } from '../edge/edge-kmip-service.ts';
import { KeyPool } from '../edge/key-pool.ts';
import { executeClientRequest } from './client-admin.ts';
import { serveDeviceAdmin } from './device-admin.ts';

/** Renew a lease this long before it ends, checking this often. */
const RENEW_MARGIN_SECONDS = 120n;
const RENEW_EVERY_MS = 30_000;
/** How long the ready line waits for the first answer of the upstream before saying "offline". */
const UPSTREAM_PROBE_MS = 5_000;

/** The Put/Notify listener's default peer: the keys the upstream presented on our verified connections, kept in the store. */
async function learnedUpstream(agent: AgentCore, pool: TlsPool, log: Logger): Promise<LearnedUpstream> {
  const peers = await UpstreamPeers.load(agent.store, log);
  pool.onVerifiedPeer = (spki) => peers.record(spki);
  return { get size() { return peers.size; }, has: (spki) => peers.has(spki), learn: () => pool.probe(10_000) };
}

export async function runAgentCommand(args: string[], out: (text: string) => void): Promise<number> {
  // 1. flags
  const flags = parseRunFlags(args);
  if (flags.help) {
    // Loaded only here: help.ts holds every command's usage, with the modules that define them.
    out((await import('./help.ts')).helpText('run'));
    return 0;
  }
  // A SIGHUP during startup must not kill the agent (Node's default); it is handled once serving.
  let onHangup: () => void = () => undefined;
  const hangup = (): void => onHangup();
  process.on('SIGHUP', hangup);
  try {
    // 2. the effective configuration
    const sources: ConfigSources = { ...(flags.configFile !== undefined && { file: flags.configFile }), flags };
    const config = loadAgentConfig(sources);
    // 3. startup checks
    checkStartup(config, sources);
    await checkListenAddresses(config, sources);
    // 4. the parts
    return await serve(config, sources, out, (reload) => (onHangup = reload));
  } finally {
    process.off('SIGHUP', hangup);
  }
}

/** Everything that can be checked before starting, each problem one line (exit 2). */
function checkStartup(config: AgentConfig, sources: ConfigSources): void {
  const problems: string[] = [];
  try {
    prepareDataFolder(config.data, fieldName('data', sources));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.lines);
  }
  problems.push(...checkTlsFiles({ role: 'upstream', ...config.upstream }));
  if (config.pushListener) {
    problems.push(...checkTlsFiles({ role: 'push listener', ...config.pushListener }));
    if (config.pushListener.peerCert !== undefined) problems.push(...checkPinnedCertificate(config.pushListener.peerCert, config.pushListener.ca, 'upstream'));
  }
  if (config.kmip) {
    // The CA verifies the clients; the endpoint's own certificate is what the clients verify (it
    // may come from another CA, the one the clients trust): checked on its own, as MQTT's is.
    problems.push(...checkTlsFiles({ role: 'KMIP endpoint', caRole: 'KMIP client', ca: config.kmip.ca }));
    problems.push(...checkTlsFiles({ role: 'KMIP endpoint', cert: config.kmip.cert, key: config.kmip.key }));
  }
  if (config.mqtt && (config.mqtt.ca !== undefined || config.mqtt.cert !== undefined)) {
    // The CA verifies the broker; the client certificate may come from another CA (the broker's
    // own cafile decides), so it is checked on its own: parses, in date, matches its key.
    if (config.mqtt.ca !== undefined) problems.push(...checkTlsFiles({ role: 'MQTT broker', ca: config.mqtt.ca }));
    if (config.mqtt.cert !== undefined && config.mqtt.key !== undefined) problems.push(...checkTlsFiles({ role: 'MQTT client', cert: config.mqtt.cert, key: config.mqtt.key }));
  }
  for (const path of config.serial) {
    try {
      if (!statSync(path).isCharacterDevice()) problems.push(`${fieldName('serial', sources)} ${path}: not a serial device (not a character device)`);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problems.push(`${fieldName('serial', sources)} ${path}: ${code === 'ENOENT' ? 'no such device (is it plugged in? stable names are in /dev/serial/by-id)' : `cannot look at it (${code})`}`);
    }
  }
  if (config.mqtt?.passwordFile !== undefined) {
    // The transport's own reader (bounded, one line, not empty), so that both say the same; the
    // password is read again when the transport starts and not kept here.
    try {
      readMqttPassword(config.mqtt.passwordFile).fill(0);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (problems.length > 0) throw new ConfigError('CONFIG_INVALID', problems);
}

/**
 * Every address the agent will listen on is bound once and released before anything starts, so
 * that a port in use is one line before the store is opened or a log line written (the binds
 * themselves say the same, should another process take the port in between).
 */
async function checkListenAddresses(config: AgentConfig, sources: ConfigSources): Promise<void> {
  const addresses: [string, string | undefined][] = [['embeddedBroker', config.embeddedBroker], ['pushListener.listen', config.pushListener?.listen], ['metrics.listen', config.metrics?.listen], ['kmip.listen', config.kmip?.listen]];
  for (const [path, address] of addresses) {
    if (address === undefined) continue;
    const { host, port } = parseHostPort(address, 0, { listen: true });
    if (port === 0) continue;
    await listening(fieldName(path, sources), address, () => new Promise<void>((resolve, reject) => {
      const probe = createServer();
      probe.once('error', reject);
      probe.listen(port, host, () => probe.close(() => resolve()));
    }));
  }
}

/** The nonce-MAC mapping the agent core reads at each cache fill: one object, updated in place by a reload. */
function applyNonceMac(target: { defaultMacKey?: string; perKey: Record<string, string> }, config: AgentConfig['nonceMac']): void {
  delete target.defaultMacKey;
  if (config?.defaultKey !== undefined) target.defaultMacKey = config.defaultKey;
  target.perKey = { ...config?.perKey };
}

/** The upstream's first answer (Discover Versions), bounded: "offline" with the reason logged is allowed. */
async function probeUpstream(client: KmipClient, log: Logger, address: string): Promise<'online' | 'offline'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer from ${address} within ${UPSTREAM_PROBE_MS} ms`)), UPSTREAM_PROBE_MS)));
  try {
    await Promise.race([client.discoverVersions(), timeout]);
    log.info({ event: 'upstream_online', upstream: address }, 'upstream reachable');
    return 'online';
  } catch (error) {
    log.warn({ event: 'upstream_offline', upstream: address, reason: (error as Error).message }, `upstream unreachable at start, serving devices from the cache: ${(error as Error).message}`);
    return 'offline';
  } finally {
    clearTimeout(timer);
  }
}

/** The configuration's broker section as the MQTT transport's settings (files are read there). */
function mqttSettings(section: NonNullable<AgentConfig['mqtt']>, url: string): MqttSettings {
  const settings: MqttSettings = { url };
  for (const field of ['username', 'passwordFile', 'ca', 'cert', 'key', 'clientId'] as const) {
    const value = section[field];
    if (value !== undefined) settings[field] = value;
  }
  return settings;
}

async function serve(config: AgentConfig, sources: ConfigSources, out: (text: string) => void, onReload: (reload: () => void) => void): Promise<number> {
  const log = createLogger({ level: config.logLevel }, await logDestination(2));
  guardProcess(log);
  const upstream = parseHostPort(config.upstream.address);
  const watch = new AgentWatch(log, config.upstream.address); // logs, /metrics, status (src/metrics)
  const pool = new TlsPool({
    ...upstream,
    ca: readPem(config.upstream.ca, 'upstream CA'),
    cert: readPem(config.upstream.cert, 'client certificate'),
    key: readPem(config.upstream.key, 'client key'),
    ...(config.upstream.serverName !== undefined && { serverName: config.upstream.serverName }),
  });
  const client = new KmipClient({ transport: watch.transport(pool) });
  const nonceMac: { defaultMacKey?: string; perKey: Record<string, string> } = { perKey: {} };
  applyNonceMac(nonceMac, config.nonceMac);
  const agent = await AgentCore.open({ data: config.data, client, log, nonceMac, breaker: watch.breaker });
  // The push listener's default peer is learned from our own verified connections, this first one included.
  const pushPeer = config.pushListener;
  const learned = pushPeer && pushPeer.peerCert === undefined && pushPeer.peerName === undefined ? await learnedUpstream(agent, pool, log) : undefined;
  const upstreamState = probeUpstream(client, log, config.upstream.address);
  const registry = new DeviceRegistry(agent.store, agent.masterKey);
  const clients = new ClientRegistry(agent.store);
  // Offline Create for the local KMIP clients (issue #16): their pool templates' keys made upstream
  // ahead of need, and the outbox that writes a taken key's attributes upstream when it is back.
  const keyPool = config.kmip ? await KeyPool.open({ agent, clients: () => clients.list(), log }) : undefined;
  // One edge KMIP service behind both doors: the device protocol and the local KMIP endpoint.
  const edge = new EdgeKmipService(agent, agent.store, log, { offlineCreator: keyPool });
  const service = new DeviceService(agent, registry, agent.store, log, { service: edge });
  watch.attach({ agent, service });
  const closers: (() => Promise<void>)[] = [];
  let pushListener: PushListener | undefined;
  let kmipListener: KmipListener | undefined;
  // A client id that stays the same across restarts, with a persistent session: the broker keeps
  // the QoS 1 frames devices publish while the agent is away (restart or broker restart).
  const session = { clientId: agentClientId(config.data), persistentSession: true };
  let mqtt: MqttConnectOptions | undefined = config.mqtt?.url === undefined ? undefined : resolveMqttSettings(mqttSettings(config.mqtt, config.mqtt.url), session);
  let transport: MqttDeviceTransport | undefined;
  try {
    if (config.embeddedBroker !== undefined) {
      const at = parseHostPort(config.embeddedBroker, 1883, { listen: true });
      const broker = await listening(fieldName('embeddedBroker', sources), config.embeddedBroker, () => startEmbeddedBroker(at.host, at.port));
      closers.push(() => broker.close());
      mqtt = { host: broker.host, port: broker.port, ...session };
    }
    if (mqtt) {
      // A broker down at start is retried in the background (logged); the ready line says which.
      const started = await MqttDeviceTransport.start(mqtt, (frame, id, send) => service.handle(frame, id, send), config.mqtt?.prefix ?? 'kmip-edge', { log, wait: config.embeddedBroker !== undefined ? 'connected' : 'first-attempt' });
      transport = started;
      service.relay.defaultRoute = (id) => (frame) => started.sendTo(id, frame);
      watch.attachMqtt(() => started.state === 'connected');
      closers.push(() => started.close());
    }
    for (const path of config.serial) {
      const line = await startSerialTransport(path, (frame, send) => service.handle(frame, undefined, send)).catch((error: unknown) => {
        if (!isKmipEdgeError(error, 'SERIAL_OPEN_FAILED')) throw error;
        throw new ConfigError('CONFIG_INVALID', [`${fieldName('serial', sources)} ${path}: cannot open it (${(error.cause as Error | undefined)?.message.replace(/^Error: /, '') ?? error.message})`], { cause: error });
      });
      closers.push(() => line.close());
    }
    // `kmip-edge device add|list|remove|update` while this process holds the store.
    // … and `kmip-edge client …`, whose changes the KMIP endpoint sees from the next request on.
    // `status` also shows the local KMIP endpoint and the key pool (its outbox conflicts included).
    const queries = watch.queries(agent, registry);
    const agentStatus = queries.status!;
    queries.status = async () => ({
      ...(await agentStatus()),
      kmipEndpoint: kmipListener ? { listen: kmipListener.address, clients: (await clients.list()).length, openConnections: kmipListener.openConnections, connections: kmipListener.counts.connections } : null,
      keyPool: keyPool ? await keyPool.status() : null,
    });
    const admin = await serveDeviceAdmin(config.data, registry, (id) => service.forget(id), queries, log, () => service.flush(), (request) => executeClientRequest(clients, request, log).finally(() => keyPool?.wake()));
    closers.push(() => new Promise<void>((resolve) => admin.close(() => resolve())));
    const push = config.pushListener;
    if (push) {
      const at = parseHostPort(push.listen, 0, { listen: true });
      // The registered upstream: a pinned certificate, a name, or by default the key the upstream presents to us (issue #12 §6).
      const registered = push.peerCert !== undefined ? { certificate: readPem(push.peerCert, 'pinned upstream certificate') }
        : push.peerName !== undefined ? { hostName: push.peerName }
        : { learned: learned ?? (await learnedUpstream(agent, pool, log)) };
      pushListener = await listening(fieldName('pushListener.listen', sources), push.listen, () => PushListener.start({
        ...at,
        ca: readPem(push.ca, 'push CA'), cert: readPem(push.cert, 'push listener certificate'), key: readPem(push.key, 'push listener key'),
        upstream: registered,
        ...(push.ciphers !== undefined && { ciphers: push.ciphers }),
        apply: watch.pushes((pushed) => service.applyAndRelay(pushed)),
        log,
      }));
      closers.push(() => pushListener!.close());
    }
    const kmip = config.kmip;
    if (kmip) {
      const at = parseHostPort(kmip.listen, 0, { listen: true });
      kmipListener = await listening(fieldName('kmip.listen', sources), kmip.listen, () => KmipListener.start({
        ...at,
        ca: readPem(kmip.ca, 'KMIP client CA'), cert: readPem(kmip.cert, 'KMIP endpoint certificate'), key: readPem(kmip.key, 'KMIP endpoint key'),
        ...(kmip.ciphers !== undefined && { ciphers: kmip.ciphers }),
        clients, handler: edge, log,
      }));
      watch.attachKmipEndpoint(kmipListener.counts);
      closers.push(() => kmipListener!.close());
      keyPool!.start();
      closers.push(() => keyPool!.stop());
    }
    if (config.metrics) {
      const metrics = await listening(fieldName('metrics.listen', sources), config.metrics.listen, () => watch.serve(config.metrics!.listen));
      closers.push(() => metrics.close());
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

  // SIGHUP: reload what can change without a restart, one reload at a time.
  let running = config;
  let reloads = Promise.resolve();
  onReload(() => {
    reloads = reloads.then(async () => {
      let next: AgentConfig;
      try {
        next = loadAgentConfig(sources);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        log.error({ event: 'config_reload_failed', problems: error.lines }, `configuration not reloaded, the running one is kept: ${error.lines.join('; ')}`);
        return;
      }
      const plan = planReload(running, next);
      if (plan.restart.length > 0) log.warn({ event: 'config_restart_needed', fields: plan.restart.map((path) => fieldName(path, sources)) }, 'these settings change only with a restart; the running values are kept');
      log.level = next.logLevel;
      applyNonceMac(nonceMac, next.nonceMac);
      running = { ...running, logLevel: next.logLevel, ...(next.nonceMac !== undefined ? { nonceMac: next.nonceMac } : { nonceMac: undefined }) };
      const devices = await registry.list();
      for (const device of devices) service.forget(device.id);
      log.info({ event: 'config_reloaded', applied: plan.apply, devices: devices.length }, 'configuration and device registry reloaded');
    }).catch((error: unknown) => log.error({ event: 'config_reload_failed', err: error }, 'configuration reload failed'));
  });

  const upstreamNow = await upstreamState;
  if (upstreamNow === 'offline') watch.breaker.assumeOffline(); // status and metrics say offline until a call gets through
  // Listening for SIGTERM before saying ready: a supervisor may stop the agent the moment it reads the line.
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  out(JSON.stringify({ ready: true, data: config.data, upstream: upstreamNow, mqtt: mqtt ? `${mqtt.tls ? 'mqtts' : 'mqtt'}://${mqtt.host}:${mqtt.port}` : null, mqttState: transport?.state ?? null, serial: config.serial, pushListen: pushListener ? pushListener.port : null, kmipListen: kmipListener?.address ?? null, metrics: watch.metricsAddress }) + '\n');
  watch.serving();
  // After the ready line: loading it must not delay the start.
  const settler = await (await import('../memory-settler.ts')).startMemorySettler({ log });
  log.info({ event: 'agent_serving', upstream: upstreamNow, mqtt: mqtt && `${mqtt.host}:${mqtt.port}`, embeddedBroker: config.embeddedBroker !== undefined, serial: config.serial, pushListen: pushListener?.port, kmipListen: kmipListener?.address, outboxesResumed: resumed }, 'agent serving');
  await stopped;
  watch.stopping();
  settler.stop();
  clearInterval(renewal);
  await reloads;
  service.relay.close();
  for (const close of closers.reverse()) await close(); // no more frames in
  await service.close(); // writes the counters still held back
  await agent.close(); // waits for the store's queued synced writes
  await client.close();
  log.info('agent stopped');
  return 0;
}
