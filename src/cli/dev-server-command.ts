/**
 * `kmip-edge dev-server --port P --dir D` (CLI.md): the development KMIP server. Certificates
 * are created in D on first start; when listening it prints one JSON ready line and serves until
 * SIGTERM or SIGINT.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDevPki } from '../devserver/pki.ts';
import { DevKmipServer } from '../devserver/server.ts';
import { UsageError } from './errors.ts';

export async function runDevServerCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      port: { type: 'string', default: '5696' },
      host: { type: 'string', default: '127.0.0.1' },
      dir: { type: 'string' },
      store: { type: 'string', default: 'memory' },
      'push-to': { type: 'string', multiple: true },
      'lease-seconds': { type: 'string', default: '3600' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])} (dev-server push is not built yet)`);
  if (values.dir === undefined) throw new UsageError('dev-server needs --dir D (certificates are kept there)');
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be 0..65535');
  if (values.store !== 'memory') throw new UsageError(`--store ${values.store}: only the memory store is built so far`);
  if (values['push-to'] !== undefined) throw new UsageError('--push-to: sending Put/Notify is not built yet');
  const leaseSeconds = Number(values['lease-seconds']);
  if (!Number.isInteger(leaseSeconds) || leaseSeconds < 0) throw new UsageError('--lease-seconds must be a whole number ≥ 0');

  const pki = ensureDevPki(resolve(values.dir));
  const server = new DevKmipServer(pki, { leaseSeconds });
  const bound = await server.listen(port, values.host);
  out(JSON.stringify({ ready: true, port: bound, ...pki }) + '\n');
  await new Promise<void>((done) => {
    const stop = (): void => void server.close().then(done);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}
