/** The connection pool: refused connects back off exponentially; connections are reused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { freePort } from '../../src/bench/free-port.ts';
import { ScriptedServer } from '../helpers/scripted-server.ts';

describe('TlsPool', () => {
  it('a refused connect is NET_CONNECT_FAILED, and the next attempt waits out the back-off', async () => {
    const port = await freePort(); // nothing listens there
    const server = await new ScriptedServer(() => []).start();
    const pool = new TlsPool({ ...server.endpoint, port }, { minBackoffMs: 150, maxBackoffMs: 1000 });
    try {
      await assert.rejects(pool.acquire(2000), (e: unknown) => (e as { code?: string }).code === 'NET_CONNECT_FAILED');
      const started = Date.now();
      await assert.rejects(pool.acquire(2000), (e: unknown) => (e as { code?: string }).code === 'NET_CONNECT_FAILED');
      assert.ok(Date.now() - started >= 140, `second attempt came after ${Date.now() - started} ms`);
    } finally {
      await pool.close();
      await server.stop();
    }
  });

  it('reuses an idle connection and opens no more than maxConnections', async () => {
    const server = await new ScriptedServer(() => []).start();
    const pool = new TlsPool(server.endpoint, { maxConnections: 1 });
    try {
      const first = await pool.acquire(2000);
      const waiting = pool.acquire(2000);
      pool.release(first, false);
      assert.equal(await waiting, first);
      pool.release(first, false);
      await assert.rejects(
        (async () => {
          const held = await pool.acquire(2000);
          try {
            await pool.acquire(100);
          } finally {
            pool.release(held, false);
          }
        })(),
        (e: unknown) => (e as { code?: string }).code === 'NET_TIMEOUT',
      );
    } finally {
      await pool.close();
      await server.stop();
    }
  });
});
