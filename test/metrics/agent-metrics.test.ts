/**
 * The metrics and upstream watch against the development KMIP server (in process, mutual TLS) and
 * LevelDB on disk: refills logged and counted with their outcome (granted, refused), TLS failures
 * logged with the reason once, labels bounded (hostile operation numbers, many devices with
 * pending pushes), the exposition parsed as Prometheus text, and the --metrics address at its limits.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { ObjectType, Operation, ResultReason, Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { createLogger } from '../../src/log.ts';
import { AgentMetrics, MAX_DEVICE_SERIES } from '../../src/metrics/agent-metrics.ts';
import { parseMetricsAddress } from '../../src/metrics/http-server.ts';
import { AgentObserver, SUCCESS } from '../../src/metrics/observer.ts';
import { UpstreamWatch, WatchedBreaker } from '../../src/metrics/upstream-watch.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { enumeration, longInteger, structure } from '../../src/ttlv/build.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { TestCa } from '../helpers/certificates.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { startDevServer } from '../helpers/dev-server.ts';

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: 'debug' }, new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  }));
  return { log, lines };
}

/** Sample lines of the Prometheus text format: `name{labels} value`. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match && match[1] === name) out.set(match[2] ?? '', Number(match[3]));
  }
  return out;
}

describe('refills through the upstream watch (development server)', () => {
  it('a granted refill and a refused one: logged with key, units, latency, outcome; counted', async () => {
    const dev = await startDevServer();
    const { log, lines } = capturingLogger();
    const observer = new AgentObserver();
    const metrics = new AgentMetrics(observer, { defaultMetrics: false });
    const admin = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
    const client = new KmipClient({ transport: new UpstreamWatch(new TlsPool(dev.endpoint), log, metrics, `127.0.0.1:${dev.endpoint.port}`), version: { major: 1, minor: 2 } });
    const agent = await AgentCore.open({ data: mkdtempSync(join(tmpdir(), 'kmip-edge-metrics-')), client, breaker: new WatchedBreaker(log), ledger: { minChunk: 10n } });
    try {
      // 12 units in all: the first refill (a chunk of 10) is granted; asking 10 more exceeds what is left.
      const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 12n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Object)]);
      const uid = await admin.create(ObjectType.SymmetricKey, aesKey('refilled', undefined, [{ name: 'Usage Limits', value: limits }]));
      await admin.activate(uid);
      metrics.attach({ ledger: agent.ledger, store: agent.store });
      await agent.grantUnits('meter', 'r1', uid, 5n);
      await assert.rejects(agent.grantUnits('meter', 'r2', uid, 10n), { code: 'LEDGER_INSUFFICIENT' });
      const refills = lines.filter((l) => l.event === 'refill');
      const granted = refills.filter((l) => l.outcome === 'Success');
      const refused = refills.filter((l) => l.outcome !== 'Success');
      assert.ok(granted.length >= 1 && granted.every((l) => l.level === 30 && l.uid === uid && typeof l.ms === 'number'), JSON.stringify(refills));
      assert.equal(granted.reduce((sum, l) => sum + (l.units as number), 0), 10);
      assert.ok(refused.length >= 1 && refused.every((l) => l.level === 40 && l.uid === uid && typeof l.reason === 'string'), JSON.stringify(refills));
      const text = await metrics.text();
      assert.equal(samples(text, 'kmip_edge_refills_total').get('{outcome="Success"}'), granted.length);
      assert.equal([...samples(text, 'kmip_edge_refills_total')].filter(([labels]) => labels !== '{outcome="Success"}').reduce((sum, [, n]) => sum + n, 0), refused.length);
      assert.equal(samples(text, 'kmip_edge_refill_units_total').get(''), 10);
      assert.equal(samples(text, 'kmip_edge_allocation_remaining_units').get(`{key="${uid}"}`), 5);
      assert.ok((samples(text, 'kmip_edge_upstream_request_duration_seconds_count').get('{operation="GetUsageAllocation",outcome="ok"}') ?? 0) >= 2);
    } finally {
      await agent.close();
      await client.close();
      await admin.close();
      await dev.stop();
    }
  });

  it('a TLS failure (server not signed by the configured CA): upstream_tls_failed with the reason, once per minute', async () => {
    const dev = await startDevServer();
    const { log, lines } = capturingLogger();
    const metrics = new AgentMetrics(new AgentObserver(), { defaultMetrics: false });
    const client = new KmipClient({ transport: new UpstreamWatch(new TlsPool({ ...dev.endpoint, ca: new TestCa('some other CA').cert }, { minBackoffMs: 1 }), log, metrics, 'the-upstream:5696'), version: { major: 1, minor: 2 }, retries: 0 });
    try {
      await assert.rejects(client.get('any'), { code: 'NET_TLS_FAILED' });
      await assert.rejects(client.get('any'), { code: 'NET_TLS_FAILED' });
      const failures = lines.filter((l) => l.event === 'upstream_tls_failed');
      assert.deepEqual(failures.map((l) => [l.level, l.upstream, l.code]), [[40, 'the-upstream:5696', 'NET_TLS_FAILED'], [20, 'the-upstream:5696', 'NET_TLS_FAILED']], 'warn once, then debug');
      assert.match(failures[0]!.reason as string, /the server certificate is not signed by the configured CA/);
    } finally {
      await client.close();
      await dev.stop();
    }
  });
});

describe('the watched circuit breaker', () => {
  it('logs one upstream_offline per transition, however many calls fail together, and upstream_online when a call gets through', async () => {
    const { log, lines } = capturingLogger();
    let now = 0;
    const breaker = new WatchedBreaker(log, 3, 1000, () => now);
    const down = () => Promise.reject(Object.assign(new Error('cannot connect to kms:5696: connect ECONNREFUSED'), { code: 'NET_CONNECT_FAILED' }));
    await Promise.allSettled([1, 2, 3, 4, 5].map(() => breaker.run('a fill', down)));
    assert.equal(breaker.state, 'offline');
    await assert.rejects(breaker.run('a lease', () => Promise.resolve(1)), { code: 'AGENT_OFFLINE' }, 'open: calls fail at once');
    now += 1001;
    assert.equal(await breaker.run('a lease', () => Promise.resolve(1)), 1, 'after the cool-down a probe goes through');
    assert.equal(breaker.state, 'online');
    assert.deepEqual(lines.filter((l) => typeof l.event === 'string').map((l) => [l.event, l.level, l.during]), [['upstream_offline', 40, 'a fill'], ['upstream_online', 30, 'a lease']]);
    assert.match(lines.find((l) => l.event === 'upstream_offline')!.reason as string, /ECONNREFUSED/);
  });

  it('offline at start (the startup probe failed): offline until a call succeeds, then upstream_online; a KMIP refusal is no success', async () => {
    const { log, lines } = capturingLogger();
    const breaker = new WatchedBreaker(log);
    breaker.assumeOffline();
    assert.equal(breaker.state, 'offline');
    await assert.rejects(breaker.run('a Get', () => Promise.reject(Object.assign(new Error('no such key'), { code: 'KMIP_OPERATION_FAILED' }))));
    assert.equal(breaker.state, 'offline');
    await breaker.run('a Get', () => Promise.resolve());
    assert.equal(breaker.state, 'online');
    assert.deepEqual(lines.filter((l) => typeof l.event === 'string').map((l) => l.event), ['upstream_online']);
  });
});

describe('bounded labels', () => {
  it('device requests: operations outside the device set and unknown reasons count as Other', async () => {
    const observer = new AgentObserver();
    observer.deviceRequest(Operation.Get, SUCCESS);
    observer.deviceRequest(Operation.Get, SUCCESS);
    observer.deviceRequest(Operation.Get, ResultReason.ItemNotFound);
    for (let op = 0x1000; op < 0x1000 + 500; op++) observer.deviceRequest(op, ResultReason.OperationNotSupported); // a hostile device
    observer.deviceRequest(Operation.Destroy, ResultReason.PermissionDenied);
    observer.deviceRequest(Operation.Check, 0x80000001);
    const metrics = new AgentMetrics(observer, { defaultMetrics: false });
    const requests = samples(await metrics.text(), 'kmip_edge_device_requests_total');
    assert.deepEqual(Object.fromEntries(requests), {
      '{operation="Get",result="Success"}': 2,
      '{operation="Get",result="ItemNotFound"}': 1,
      '{operation="Other",result="OperationNotSupported"}': 500,
      '{operation="Other",result="PermissionDenied"}': 1,
      '{operation="Check",result="Other"}': 1,
    });
  });

  it(`pushes pending: one series per device with pushes pending, at most ${MAX_DEVICE_SERIES} (the most behind); the total exact`, async () => {
    const store = await LevelStore.open(mkdtempSync(join(tmpdir(), 'kmip-edge-outbox-')));
    try {
      const writes = [];
      for (let d = 0; d < MAX_DEVICE_SERIES + 50; d++) {
        const id = `dev-${String(d).padStart(3, '0')}`;
        for (let n = 0; n < (d === 7 ? 5 : 1); n++) writes.push({ type: 'put' as const, key: `outbox/${id}/${String(n).padStart(16, '0')}`, value: new Uint8Array(1) });
      }
      await store.commit(writes);
      const metrics = new AgentMetrics(new AgentObserver(), { defaultMetrics: false });
      metrics.attach({ store });
      const text = await metrics.text();
      const perDevice = samples(text, 'kmip_edge_pushes_pending');
      assert.equal(perDevice.size, MAX_DEVICE_SERIES);
      assert.equal(perDevice.get('{device="dev-007"}'), 5, 'the device most behind is kept');
      assert.equal(samples(text, 'kmip_edge_pushes_pending_total').get(''), MAX_DEVICE_SERIES + 50 + 4);
    } finally {
      await store.close();
    }
  });
});

describe('--metrics [HOST:]PORT', () => {
  it('loopback by default; ports 0 to 65535; IPv6 in brackets; anything else refused', () => {
    assert.deepEqual(parseMetricsAddress('9464'), { host: '127.0.0.1', port: 9464 });
    assert.deepEqual(parseMetricsAddress('0.0.0.0:65535'), { host: '0.0.0.0', port: 65535 });
    assert.deepEqual(parseMetricsAddress('[::1]:0'), { host: '::1', port: 0 });
    for (const bad of ['65536', 'host:', ':9464', 'a:b:9464', '', '9464x', '[::1]']) assert.throws(() => parseMetricsAddress(bad), { code: 'CLI_USAGE' }, bad);
  });
});
