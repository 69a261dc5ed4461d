// deploy/grafana-dashboard.json queries only metrics the agent exports (src/metrics/agent-metrics.ts),
// so a renamed metric cannot leave the operator with an empty panel.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

it('every metric the dashboard queries is one the agent exports', () => {
  const dashboard = JSON.parse(read('deploy/grafana-dashboard.json')) as { panels: { title: string; targets: { expr: string }[] }[] };
  const exported = new Set([...read('src/metrics/agent-metrics.ts').matchAll(/name: '(kmip_edge_[a-z_]+)'/g)].map((m) => m[1]!));
  assert.ok(exported.size >= 10, `the agent's metrics were found (${exported.size})`);
  const queried = new Set(dashboard.panels.flatMap((panel) => panel.targets.flatMap((target) => [...target.expr.matchAll(/kmip_edge_[a-z_]+/g)].map((m) => m[0].replace(/_bucket$/, '')))));
  assert.ok(queried.size >= 10);
  assert.deepEqual([...queried].filter((name) => !exported.has(name)), []);
});
