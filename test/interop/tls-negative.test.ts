/**
 * TLS is never optional: each wrong peer or certificate is refused with a clear error, against
 * the real PyKMIP server and, for an expired server certificate, a Node TLS server.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { QueryFunction } from '../../src/kmip/tables.generated.ts';
import type { TlsEndpoint } from '../../src/net/tls-options.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { TestCa } from '../helpers/certificates.ts';
import { startPyKmip, type PyKmipServer } from '../helpers/pykmip.ts';

let server: PyKmipServer;
let otherCa: TestCa;
before(async () => {
  server = await startPyKmip();
  otherCa = new TestCa('kmip-edge-other-ca');
});
after(() => server?.stop());

/** A Query through `endpoint` must fail with NET_TLS_FAILED and a message matching `reason`. */
async function refused(endpoint: TlsEndpoint, reason: RegExp): Promise<void> {
  const client = new KmipClient({ transport: new TlsPool(endpoint, { minBackoffMs: 1 }), version: { major: 1, minor: 2 }, retries: 0, timeoutMs: 5000 });
  try {
    await assert.rejects(client.query([QueryFunction.QueryOperations]), (error: unknown) => {
      const { code, message } = error as { code?: string; message: string };
      assert.equal(code, 'NET_TLS_FAILED', message);
      assert.match(message, reason);
      return true;
    });
  } finally {
    await client.close();
  }
}

describe('TLS refusals', () => {
  it('the right server, its CA and our certificate: accepted (the control case)', async () => {
    const client = new KmipClient({ transport: new TlsPool(server.endpoint), version: { major: 1, minor: 2 } });
    try {
      assert.ok((await client.query([QueryFunction.QueryOperations])).operations.length > 0);
    } finally {
      await client.close();
    }
  });

  it('a server certificate from a CA we do not trust', async () => {
    await refused({ ...server.endpoint, ca: otherCa.cert }, /not signed by the configured CA/);
  });

  it('a client certificate from another CA is refused by the server', async () => {
    const intruder = otherCa.issue('intruder', 'client');
    await refused({ ...server.endpoint, ...intruder }, /the server refused our client certificate \(unknown ca\)/);
  });

  it('an expired client certificate from the right CA is refused by the server', async () => {
    const expired = new TestCa('pykmip', server.dir).issue('kmip-client', 'client', -1);
    await refused({ ...server.endpoint, ...expired }, /the server refused our client certificate \(certificate expired\)/);
  });

  it('a server certificate for another host name', async () => {
    await refused({ ...server.endpoint, serverName: 'kmip.example.com' }, /not for this host name/);
  });

  describe('an expired server certificate', () => {
    const ca = new TestCa('kmip-edge-expiry-ca');
    let tlsServer: Server;
    let port = 0;
    before(async () => {
      const expired = ca.issue('localhost', 'server', -1);
      tlsServer = createServer({ ...expired, ca: ca.cert, requestCert: true, rejectUnauthorized: true }, (socket) => socket.end());
      await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
      port = (tlsServer.address() as { port: number }).port;
    });
    after(() => new Promise<void>((resolve) => tlsServer.close(() => resolve())));

    it('is refused', async () => {
      await refused({ host: '127.0.0.1', port, ca: ca.cert, ...ca.issue('kmip-client', 'client') }, /the server certificate has expired/);
    });
  });
});
