/**
 * `kmip-edge dev-server --port P --dir D [--push-to HOST:PORT …]` (CLI.md): the development KMIP
 * server. Certificates are created in D on first start; when listening it prints one JSON ready
 * line and serves until SIGTERM or SIGINT.
 * `kmip-edge dev-server push --dir D (--put UID [--replaces OLD] | --notify UID)`: asks the running
 * server, over its admin socket in D, to push; prints {"pushed":N,"acknowledged":M}.
 * `kmip-edge dev-server push --dir D --list`: the pushes not (yet) acknowledged.
 */
import { requestJsonLine } from '../net/json-line-socket.ts';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { KmipEdgeError } from '../errors.ts';
import { LevelObjectStore } from '../devserver/level-object-store.ts';
import { ensureDevPkiTracked, removeCreatedPki } from '../devserver/pki.ts';
import { createServer } from 'node:net';
import { listening } from '../config/listen-error.ts';
import { ADMIN_SOCKET, DevKmipServer } from '../devserver/server.ts';
import { parseHostPort } from '../net/tls-options.ts';
import { UsageError } from './errors.ts';

export const DEV_SERVER_OPTIONS = {
  port: { type: 'string', default: '5696' },
  host: { type: 'string', default: '127.0.0.1' },
  dir: { type: 'string' },
  store: { type: 'string', default: 'memory' },
  'push-to': { type: 'string', multiple: true },
  'lease-seconds': { type: 'string', default: '3600' },
} as const;

export async function runDevServerCommand(args: string[], out: (text: string) => void): Promise<number> {
  if (args[0] === 'push') return runPush(args.slice(1), out);
  const { values, positionals } = parseArgs({
    args,
    options: DEV_SERVER_OPTIONS,
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  if (values.dir === undefined) throw new UsageError('dev-server needs --dir D (certificates are kept there)');
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be 0..65535');
  if (values.store !== 'memory' && values.store !== 'leveldb') throw new UsageError(`--store must be memory or leveldb, not ${JSON.stringify(values.store)}`);
  const leaseSeconds = Number(values['lease-seconds']);
  if (!Number.isInteger(leaseSeconds) || leaseSeconds < 0) throw new UsageError('--lease-seconds must be a whole number ≥ 0');
  const pushTo = (values['push-to'] ?? []).map((endpoint) => parseHostPort(endpoint));

  const dir = resolve(values.dir);
  // The port first: a port in use must not leave a new PKI behind (nor a half-written one: pki.ts stages it).
  await listening('--port', `${values.host}:${port}`, () => portFree(port, values.host));
  const { pki, created } = ensureDevPkiTracked(dir);
  let server: DevKmipServer | undefined;
  let bound: number;
  try {
    const store = values.store === 'leveldb' ? await LevelObjectStore.open(join(dir, 'objects.leveldb')) : undefined;
    server = new DevKmipServer(pki, { leaseSeconds, pushTo, ...(store && { store }) });
    bound = await listening('--port', `${values.host}:${port}`, () => server!.listen(port, values.host));
    await server.listenAdmin(dir);
  } catch (error) {
    await server?.close().catch(() => undefined);
    removeCreatedPki(created);
    throw error;
  }
  // Listening for SIGTERM before saying ready: a test or supervisor may stop it the moment it reads the line.
  const stopped = new Promise<void>((done) => {
    const stop = (): void => void server!.close().then(done);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  out(JSON.stringify({ ready: true, port: bound, ...pki }) + '\n');
  await stopped;
  return 0;
}

/** Resolves once `port` could be bound (and is released again); rejects with the bind error. */
function portFree(port: number, host: string): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

async function runPush(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parseArgs({ args, options: { dir: { type: 'string' }, put: { type: 'string' }, replaces: { type: 'string' }, notify: { type: 'string' }, list: { type: 'boolean', default: false } }, strict: true });
  if (values.dir === undefined) throw new UsageError('dev-server push needs --dir D of the running server');
  if ([values.put !== undefined, values.notify !== undefined, values.list].filter(Boolean).length !== 1) throw new UsageError('dev-server push needs exactly one of --put UID, --notify UID or --list');
  if (values.replaces !== undefined && values.put === undefined) throw new UsageError('--replaces goes with --put');
  const request = values.list ? { list: true } : values.put !== undefined ? { put: values.put, ...(values.replaces !== undefined && { replaces: values.replaces }) } : { notify: values.notify };
  const answer = await requestJsonLine(join(resolve(values.dir), ADMIN_SOCKET), request).catch((error: NodeJS.ErrnoException) => {
    throw new KmipEdgeError('CLI_INPUT', `no development server answers in ${values.dir} (${error.code})`);
  });
  const result = JSON.parse(answer) as Record<string, unknown>;
  out(JSON.stringify(result) + '\n');
  if (values.list) return result.error === undefined ? 0 : 1;
  return result.error === undefined && result.pushed === result.acknowledged ? 0 : 1;
}
