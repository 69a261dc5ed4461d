/**
 * `kmip-edge run --metrics [HOST:]PORT`: a small HTTP server, as Prometheus exporters have —
 * GET /metrics (Prometheus text format 0.0.4), /healthz (the process answers: 200) and /readyz
 * (200 while the agent serves devices, 503 with the reason otherwise). Loopback unless a host is
 * given: metrics name keys and devices, which are not for the whole network. Nothing else is
 * served; only GET and HEAD.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { KmipEdgeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { AgentMetrics } from './agent-metrics.ts';

export const DEFAULT_METRICS_HOST = '127.0.0.1';

/** What /readyz answers: ready, or not with the reason. */
export type Readiness = () => { ready: true } | { ready: false; reason: string };

/** `[HOST:]PORT` (IPv6 as `[::1]:PORT`); the host defaults to loopback; port 0 picks a free one. */
export function parseMetricsAddress(text: string): { host: string; port: number } {
  const match = /^(?:(?:\[([^\]]+)\]|([^:[\]]+)):)?(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || !(port >= 0 && port < 65536)) throw new KmipEdgeError('CLI_USAGE', `--metrics takes [HOST:]PORT (e.g. 127.0.0.1:9464), not ${JSON.stringify(text)}`);
  return { host: match[1] ?? match[2] ?? DEFAULT_METRICS_HOST, port };
}

export interface MetricsServer {
  host: string;
  port: number;
  /** HOST:PORT as listening (the port chosen when 0 was asked). */
  address: string;
  close(): Promise<void>;
}

export async function startMetricsServer(address: string, metrics: AgentMetrics, readiness: Readiness, log: Logger): Promise<MetricsServer> {
  const { host, port } = parseMetricsAddress(address);
  const server: Server = createServer((request, response) => void answer(request, response, metrics, readiness, log));
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const why = error.code === 'EADDRINUSE' ? 'the port is in use; choose another or stop what holds it'
        : error.code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)'
        : error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND' ? 'no such local address'
        : error.message;
      reject(new KmipEdgeError('CLI_METRICS_LISTEN', `--metrics ${address}: ${why}`, { cause: error }));
    });
    server.listen(port, host, () => resolve());
  });
  server.on('error', (error) => log.warn({ event: 'metrics_server_error', reason: error.message }, 'metrics server error'));
  const bound = server.address() as { port: number };
  const shown = host.includes(':') ? `[${host}]:${bound.port}` : `${host}:${bound.port}`;
  log.info({ event: 'metrics_listening', address: shown }, 'metrics served on /metrics, /healthz, /readyz');
  return {
    host, port: bound.port, address: shown,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

async function answer(request: IncomingMessage, response: ServerResponse, metrics: AgentMetrics, readiness: Readiness, log: Logger): Promise<void> {
  const path = (request.url ?? '/').split('?')[0];
  const send = (status: number, type: string, body: string, extra: Record<string, string> = {}) => {
    response.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...extra });
    response.end(request.method === 'HEAD' ? undefined : body);
  };
  if (request.method !== 'GET' && request.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'only GET\n', { Allow: 'GET, HEAD' });
  try {
    if (path === '/metrics') return send(200, metrics.registry.contentType, await metrics.text());
    if (path === '/healthz') return send(200, 'text/plain; charset=utf-8', 'ok\n');
    if (path === '/readyz') {
      const state = readiness();
      return state.ready ? send(200, 'text/plain; charset=utf-8', 'ready\n') : send(503, 'text/plain; charset=utf-8', `not ready: ${state.reason}\n`);
    }
    return send(404, 'text/plain; charset=utf-8', 'not found: /metrics, /healthz, /readyz\n');
  } catch (error) {
    log.warn({ event: 'metrics_scrape_failed', reason: (error as Error).message }, 'collecting metrics failed');
    if (!response.headersSent) send(500, 'text/plain; charset=utf-8', 'collecting metrics failed\n');
    else response.destroy();
  }
}
