/**
 * Observability for `kmip-edge run`, in one object the composition root wires in a few lines: the
 * metrics (./agent-metrics.ts), the upstream transport and circuit breaker that log and time the
 * upstream (./upstream-watch.ts), the push watch, the HTTP server for /metrics, /healthz, /readyz
 * and the admin-socket answers for `kmip-edge status`, `ledger`, `cache`.
 *
 * Ready (/readyz 200) means serving: the agent has printed its ready line, is not shutting down,
 * and — when it uses MQTT — is connected to its broker. An offline upstream does not make it
 * unready: serving from the cache, leases and allocations is what the agent is for (§4.5).
 */
import type { AgentCore } from '../agent/agent-core.ts';
import { agentQueries } from '../cli/status-command.ts';
import type { AgentQueries } from '../cli/device-admin.ts';
import type { DeviceService } from '../devices/device-service.ts';
import type { DeviceRegistry } from '../devices/registry.ts';
import type { Push } from '../kmip/push.ts';
import type { Logger } from '../log.ts';
import type { KmipTransport } from '../net/transport.ts';
import { AgentMetrics } from './agent-metrics.ts';
import { startMetricsServer, type MetricsServer, type Readiness } from './http-server.ts';
import { watchPushes } from './push-watch.ts';
import { UpstreamWatch, WatchedBreaker } from './upstream-watch.ts';

export class AgentWatch {
  readonly metrics = new AgentMetrics();
  /** Pass to AgentCore.open: logs upstream_online / upstream_offline. */
  readonly breaker: WatchedBreaker;
  private phase: 'starting' | 'serving' | 'stopping' = 'starting';
  private mqttConnected: (() => boolean | undefined) | undefined;
  private server: MetricsServer | undefined;

  constructor(
    private readonly log: Logger,
    /** HOST:PORT of the upstream, for log lines. */
    private readonly upstream: string,
  ) {
    this.breaker = new WatchedBreaker(log);
  }

  /** The upstream transport, timed and with its failures logged. */
  transport(inner: KmipTransport): KmipTransport {
    return new UpstreamWatch(inner, this.log, this.metrics, this.upstream);
  }

  /** The agent's parts the scrape-time metrics and `status` read. */
  attach(parts: { agent: AgentCore; service: DeviceService }): void {
    const breaker = this.breaker;
    this.metrics.attach({ breaker: { get offline() { return breaker.state === 'offline'; } }, ledger: parts.agent.ledger, store: parts.agent.store, dropped: parts.service.dropped, relayCounts: parts.service.relay.counts });
  }

  /** The MQTT transport's connection state (metrics, readiness, status). */
  attachMqtt(connected: () => boolean): void {
    this.mqttConnected = connected;
    this.metrics.attach({ mqttConnected: connected });
  }

  /** The local KMIP endpoint's counts (connections, requests by result), for /metrics. */
  attachKmipEndpoint(counts: NonNullable<Parameters<AgentMetrics['attach']>[0]['kmipEndpoint']>): void {
    this.metrics.attach({ kmipEndpoint: counts });
  }

  /** The push listener's apply step, logged and counted. */
  pushes<Outcome extends string>(apply: (push: Push) => Promise<Outcome>): (push: Push) => Promise<Outcome> {
    return watchPushes(this.log, this.metrics, apply);
  }

  /** Answers for `kmip-edge status`, `ledger` and `cache` on the admin socket. */
  queries(agent: AgentCore, registry: DeviceRegistry): AgentQueries {
    return agentQueries({ agent, registry, breaker: this.breaker, mqttConnected: () => this.mqttConnected?.(), metrics: () => this.server?.address ?? null });
  }

  /** `--metrics [HOST:]PORT`: starts the HTTP server; a port in use is a CLI_ error (one line, exit 2). */
  async serve(address: string): Promise<MetricsServer> {
    this.server = await startMetricsServer(address, this.metrics, this.readiness, this.log);
    return this.server;
  }

  get metricsAddress(): string | null {
    return this.server?.address ?? null;
  }

  /** The ready line is out: /readyz may say ready. */
  serving(): void {
    this.phase = 'serving';
  }

  /** SIGTERM: /readyz says not ready while the agent drains. */
  stopping(): void {
    this.phase = 'stopping';
  }

  readonly readiness: Readiness = () => {
    if (this.phase !== 'serving') return { ready: false, reason: this.phase === 'starting' ? 'starting' : 'shutting down' };
    if (this.mqttConnected && !this.mqttConnected()) return { ready: false, reason: 'not connected to the MQTT broker' };
    return { ready: true };
  };
}
