/**
 * Put and Notify sent by the development server (KMIP 1.2 §5) to a test listener over mutual TLS:
 * acknowledged pushes are marked done; an unreachable or non-acknowledging client is retried; a
 * client with a certificate from another CA never receives anything.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { nameValue } from '../../src/kmip/attributes.ts';
import { ObjectType, Operation, PutFunction, Tag } from '../../src/kmip/tables.generated.ts';
import { findChildren, optionalValue } from '../../src/kmip/tree.ts';
import { ensureDevPki, type DevPki } from '../../src/devserver/pki.ts';
import { DevKmipServer } from '../../src/devserver/server.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { textString } from '../../src/ttlv/build.ts';
import { ItemType } from '../../src/ttlv/item.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { TestCa } from '../helpers/certificates.ts';
import { freePort } from '../../src/bench/free-port.ts';
import { ROOT } from '../helpers/cli.ts';
import { PushListener } from '../helpers/push-listener.ts';
import { until } from '../helpers/until.ts';

const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-push-'));
let pki: DevPki;
before(() => {
  pki = ensureDevPki(dir);
});

/** The listener presents the dev PKI's client certificate, valid as a server certificate (CLI.md). */
const agentIdentity = () => ({ ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) });

async function withServer(listenerPort: number, test: (server: DevKmipServer, client: KmipClient) => Promise<void>): Promise<void> {
  const server = new DevKmipServer(pki, { pushTo: [{ host: '127.0.0.1', port: listenerPort }], pushRetryMs: 50, pushMaxAttempts: 4 });
  const port = await server.listen(0);
  const client = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port, ...agentIdentity() }), version: { major: 1, minor: 2 } });
  try {
    await test(server, client);
  } finally {
    await client.close();
    await server.close();
  }
}

describe('development server: Put and Notify', () => {
  it('Notify on an attribute change carries the change and the Last Change Date, and is acknowledged', async () => {
    const listener = new PushListener(agentIdentity());
    const port = await listener.listen();
    try {
      await withServer(port, async (server, client) => {
        const uid = await client.create(ObjectType.SymmetricKey, aesKey('notify-me'));
        await client.addAttribute(uid, { name: 'x-provider', value: textString(Tag.AttributeValue, 'acme') });
        await until(() => server.pushes!.all().length === 1 && server.pushes!.unacknowledged().length === 0, 'the Notify acknowledged');
        const notify = listener.received[0]!;
        assert.equal(notify.batchItems[0]!.operation, Operation.Notify);
        assert.ok(notify.timeStamp !== undefined, 'server-initiated requests carry a Time Stamp');
        assert.equal(optionalValue(notify.batchItems[0]!.payload, Tag.UniqueIdentifier, ItemType.TextString), uid);
        const names = findChildren(notify.batchItems[0]!.payload, Tag.Attribute).map((a) => optionalValue(a, Tag.AttributeName, ItemType.TextString));
        assert.deepEqual(names, ['x-provider', 'Last Change Date']);

        await client.deleteAttribute(uid, 'x-provider');
        await until(() => listener.received.length === 2, 'two pushes received');
        const deleted = findChildren(listener.received[1]!.batchItems[0]!.payload, Tag.Attribute)[0]!;
        assert.equal(optionalValue(deleted, Tag.AttributeName, ItemType.TextString), 'x-provider');
        assert.equal(optionalValue(deleted, Tag.AttributeValue, ItemType.TextString), undefined, 'a deleted attribute is sent without a value');
      });
    } finally {
      await listener.close();
    }
  });

  it('Put New and Put Replace carry the object, its attributes and the replaced identifier', async () => {
    const listener = new PushListener(agentIdentity());
    const port = await listener.listen();
    try {
      await withServer(port, async (server, client) => {
        const old = await client.create(ObjectType.SymmetricKey, aesKey('put-old'));
        const uid = await client.create(ObjectType.SymmetricKey, aesKey('put-new'));
        const [put] = await server.put(uid);
        assert.equal(put?.acknowledged, true);
        const [replace] = await server.put(uid, old);
        assert.equal(replace?.acknowledged, true);
        const [first, second] = listener.received.map((r) => r.batchItems[0]!.payload);
        assert.equal(optionalValue(first!, Tag.PutFunction, ItemType.Enumeration), PutFunction.New);
        assert.ok(findChildren(first!, Tag.SymmetricKey).length === 1, 'the key itself');
        assert.ok(findChildren(first!, Tag.Attribute).length > 5, 'with its attributes');
        assert.equal(optionalValue(second!, Tag.PutFunction, ItemType.Enumeration), PutFunction.Replace);
        assert.equal(optionalValue(second!, Tag.ReplacedUniqueIdentifier, ItemType.TextString), old);
      });
    } finally {
      await listener.close();
    }
  });

  it('an unreachable client is retried until it listens; a refusing one is retried, then listed unacknowledged', async () => {
    // The port is free when chosen and must stay unheard of until the listener takes it; a test
    // running beside this one may take it first (EADDRINUSE, seen in a full run): then a new one.
    for (let attempt = 1; ; attempt++) {
      try {
        await retriedUntilListening(await freePort());
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt === 3) throw error;
      }
    }
  });

  async function retriedUntilListening(port: number): Promise<void> {
    await withServer(port, async (server, client) => {
      const uid = await client.create(ObjectType.SymmetricKey, aesKey('retry'));
      const pending = server.put(uid);
      await until(() => (server.pushes!.all()[0]?.attempts ?? 0) >= 2, 'a second attempt');
      assert.equal(server.pushes!.unacknowledged().length, 1);
      const listener = new PushListener(agentIdentity());
      await listener.listen(port);
      try {
        const [record] = await pending;
        assert.equal(record?.acknowledged, true);
        assert.ok(record!.attempts >= 3);
        listener.mode = 'refuse';
        const [refused] = await server.put(uid);
        assert.equal(refused?.acknowledged, false);
        assert.equal(refused?.gaveUp, true);
        assert.equal(refused?.attempts, 4);
        assert.match(refused!.lastError ?? '', /status 1/);
        assert.deepEqual(server.pushes!.unacknowledged().map((r) => r.id), [refused!.id]);
      } finally {
        await listener.close();
      }
    });
  }

  it('a client whose certificate is from another CA never receives anything', async () => {
    const stranger = new TestCa('kmip-edge-stranger-ca').issue('localhost', 'server');
    const listener = new PushListener({ ca: readFileSync(pki.ca), ...stranger });
    const port = await listener.listen();
    try {
      await withServer(port, async (server, client) => {
        const uid = await client.create(ObjectType.SymmetricKey, aesKey('stranger'));
        const [record] = await server.put(uid);
        assert.equal(record?.acknowledged, false);
        assert.match(record?.lastError ?? '', /not signed by the configured CA/);
        assert.equal(listener.received.length, 0);
      });
    } finally {
      await listener.close();
    }
  });

  it('kmip-edge dev-server --push-to and dev-server push from the shell', async () => {
    const serverDir = mkdtempSync(join(tmpdir(), 'kmip-edge-push-cli-'));
    // The CLI server makes its own PKI in its folder; the listener needs that CA and certificate.
    const cliPki = ensureDevPki(serverDir);
    const cliListener = new PushListener({ ca: readFileSync(cliPki.ca), cert: readFileSync(cliPki.clientCert), key: readFileSync(cliPki.clientKey) });
    const cliListenerPort = await cliListener.listen();
    const child = execFile(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), 'dev-server', '--port', '0', '--dir', serverDir, '--push-to', `127.0.0.1:${cliListenerPort}`]);
    try {
      const ready = await new Promise<{ port: number }>((resolve, reject) => {
        child.stdout!.once('data', (line: Buffer) => resolve(JSON.parse(line.toString()) as { port: number }));
        child.once('exit', (code) => reject(new Error(`dev-server exited ${code}`)));
      });
      const client = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port: ready.port, ca: readFileSync(cliPki.ca), cert: readFileSync(cliPki.clientCert), key: readFileSync(cliPki.clientKey) }), version: { major: 1, minor: 2 } });
      const uid = await client.create(ObjectType.SymmetricKey, aesKey('cli-push'));
      await client.modifyAttribute(uid, { name: 'Name', value: nameValue('cli-push-renamed') });
      await client.close();
      const { stdout } = await promisify(execFile)(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), 'dev-server', 'push', '--dir', serverDir, '--put', uid]);
      assert.deepEqual(JSON.parse(stdout), { pushed: 1, acknowledged: 1 });
      const listed = await promisify(execFile)(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), 'dev-server', 'push', '--dir', serverDir, '--list']);
      assert.deepEqual(JSON.parse(listed.stdout), { unacknowledged: [] });
      await until(() => cliListener.received.length === 2, 'two pushes at the CLI listener');
      assert.deepEqual(cliListener.received.map((r) => r.batchItems[0]!.operation), [Operation.Notify, Operation.Put]);
    } finally {
      child.kill('SIGTERM');
      await cliListener.close();
    }
  });
});
