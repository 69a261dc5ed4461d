/**
 * The agent's Prometheus metrics (prom-client, its own Registry — never the global one, so that a
 * test process can build several). Two kinds:
 * - recorded as they happen: upstream request latency (histogram), refills and their outcome,
 *   pushes received from the upstream — by ./upstream-watch.ts and ./push-watch.ts;
 * - read when scraped (`collect`), from state the agent keeps anyway: device requests and cache
 *   lookups (./observer.ts), frames rejected (DeviceService.dropped), allocation remaining per key
 *   (the ledger), upstream state (the circuit breaker), pushes pending per device (the outbox),
 *   relay counts, MQTT connected. A scrape costs a ledger and an outbox scan, the hot path nothing.
 *
 * Cardinality is bounded: operations, results and reasons are enumerations (the local KMIP
 * endpoint's too, never a client id); keys are those with a
 * ledger; devices appear only in `kmip_edge_pushes_pending` and only those with pushes pending, at
 * most MAX_DEVICE_SERIES of them (the most behind first; the total is always exact). No key
 * material and no device key is ever a label or a value (ARCHITECTURE.md §4 invariant 5).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Ledger } from '../agent/ledger.ts';
import type { KeyValueStore } from '../store/kv-store.ts';
import { observer as defaultObserver, type AgentObserver } from './observer.ts';
import { pendingPushes } from './pending-pushes.ts';

/** Devices given their own `kmip_edge_pushes_pending` series at most. */
export const MAX_DEVICE_SERIES = 100;

/** What the scrape-time metrics read; each part optional until the agent has it. */
export interface MetricSources {
  breaker?: { readonly offline: boolean };
  ledger?: Ledger;
  /** The agent's store, for the push outboxes. */
  store?: KeyValueStore;
  dropped?: ReadonlyMap<string, number>;
  relayCounts?: { readonly sent: number; readonly acknowledged: number; readonly undeliverable: number };
  /** undefined: the agent has no MQTT transport. */
  mqttConnected?: () => boolean | undefined;
  /** The local KMIP endpoint's counts (src/endpoint/endpoint-counts.ts), when it listens. */
  kmipEndpoint?: { readonly connections: Readonly<Record<string, number>>; requests(): { operation: string; result: string; count: number }[] };
}

export class AgentMetrics {
  readonly registry = new Registry();
  private sources: MetricSources = {};

  readonly upstreamSeconds = new Histogram({
    name: 'kmip_edge_upstream_request_duration_seconds',
    help: 'Round trips to the upstream KMIP server, by first operation of the batch and outcome (ok: a response arrived; error: none did).',
    labelNames: ['operation', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly refills = new Counter({
    name: 'kmip_edge_refills_total',
    help: 'Get Usage Allocation requests to the upstream (ledger refills), by outcome: Success, a Result Reason, or error (no response: counted as not granted).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly refillUnits = new Counter({
    name: 'kmip_edge_refill_units_total',
    help: 'Usage units the upstream granted to this agent in refills.',
    registers: [this.registry],
  });

  readonly pushesReceived = new Counter({
    name: 'kmip_edge_pushes_received_total',
    help: 'Put and Notify messages from the upstream, by operation and outcome (applied, duplicate, stale, failed).',
    labelNames: ['operation', 'outcome'] as const,
    registers: [this.registry],
  });

  constructor(private readonly observer: AgentObserver = defaultObserver, options: { defaultMetrics?: boolean } = {}) {
    const self = this;
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    new Counter({
      name: 'kmip_edge_device_requests_total',
      help: 'Device requests answered, per batch item: by operation and result (Success or the KMIP Result Reason).',
      labelNames: ['operation', 'result'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { operation, result, count } of self.observer.deviceRequests()) this.inc({ operation, result }, count);
      },
    });
    new Counter({
      name: 'kmip_edge_frames_rejected_total',
      help: 'Device frames dropped unanswered (or rate limited), by reason code (FRAME_AUTH_FAILED, FRAME_REPLAYED, …).',
      labelNames: ['reason'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [reason, count] of self.sources.dropped ?? []) this.inc({ reason }, count);
      },
    });
    new Counter({
      name: 'kmip_edge_key_cache_lookups_total',
      help: 'Key cache lookups: hit (in memory or on disk) or miss (fetched from the upstream).',
      labelNames: ['result'] as const,
      registers: [this.registry],
      collect() {
        const { hits, misses } = self.observer.cacheLookups();
        this.reset();
        this.inc({ result: 'hit' }, hits);
        this.inc({ result: 'miss' }, misses);
      },
    });
    new Gauge({
      name: 'kmip_edge_allocation_remaining_units',
      help: 'Usage units allocated to this agent by the upstream and not yet granted to devices, per key.',
      labelNames: ['key'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        const ledger = self.sources.ledger;
        if (!ledger) return;
        for (const key of await ledger.keyIds()) {
          const totals = await ledger.totals(key);
          this.set({ key }, Number(totals.allocatedFromUpstream - totals.grantedToDevices));
        }
      },
    });
    new Gauge({
      name: 'kmip_edge_upstream_online',
      help: '1 while the upstream is reachable, 0 while the agent serves offline (circuit breaker open).',
      registers: [this.registry],
      collect() {
        if (self.sources.breaker) this.set(self.sources.breaker.offline ? 0 : 1);
      },
    });
    new Gauge({
      name: 'kmip_edge_pushes_pending',
      help: `Relayed Put/Notify messages waiting for a device's acknowledgement, per device with any pending (at most ${MAX_DEVICE_SERIES} devices, the most behind first).`,
      labelNames: ['device'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        if (!self.sources.store) return;
        const pending = [...(await pendingPushes(self.sources.store))].sort((a, b) => b[1] - a[1]).slice(0, MAX_DEVICE_SERIES);
        for (const [device, count] of pending) this.set({ device }, count);
      },
    });
    new Gauge({
      name: 'kmip_edge_pushes_pending_total',
      help: 'Relayed Put/Notify messages waiting for acknowledgement, all devices.',
      registers: [this.registry],
      async collect() {
        if (!self.sources.store) return;
        let total = 0;
        for (const count of (await pendingPushes(self.sources.store)).values()) total += count;
        this.set(total);
      },
    });
    new Counter({
      name: 'kmip_edge_pushes_relayed_total',
      help: 'Relayed push frames: sent to devices (each attempt), acknowledged by devices, undeliverable (too large for the device).',
      labelNames: ['event'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        const counts = self.sources.relayCounts;
        if (!counts) return;
        this.inc({ event: 'sent' }, counts.sent);
        this.inc({ event: 'acknowledged' }, counts.acknowledged);
        this.inc({ event: 'undeliverable' }, counts.undeliverable);
      },
    });
    new Counter({
      name: 'kmip_edge_kmip_connections_total',
      help: 'Connections to the local KMIP endpoint, by what became of them: accepted (a registered client), handshake_refused (TLS: no certificate, another CA), unregistered (a certificate of the CA that is no registered client), over_capacity (at the endpoint connection limit), over_client_limit (at the per-client connection limit), timed_out, framing_lost, invalid_message.',
      labelNames: ['event'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [event, count] of Object.entries(self.sources.kmipEndpoint?.connections ?? {})) this.inc({ event }, count);
      },
    });
    new Counter({
      name: 'kmip_edge_kmip_requests_total',
      help: 'Batch items answered on the local KMIP endpoint, by operation and result (Success or the KMIP Result Reason).',
      labelNames: ['operation', 'result'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { operation, result, count } of self.sources.kmipEndpoint?.requests() ?? []) this.inc({ operation, result }, count);
      },
    });
    new Gauge({
      name: 'kmip_edge_mqtt_connected',
      help: '1 while the agent is connected to its MQTT broker, 0 while not (absent without MQTT).',
      registers: [this.registry],
      collect() {
        this.reset();
        const connected = self.sources.mqttConnected?.();
        if (connected !== undefined) this.set(connected ? 1 : 0);
      },
    });
  }

  /** Adds (or replaces) what the scrape-time metrics read. */
  attach(sources: MetricSources): void {
    this.sources = { ...this.sources, ...sources };
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
