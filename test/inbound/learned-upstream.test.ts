/**
 * The listener's default identity before and after the agent has connected upstream (issue #12
 * §6): with nothing learned a push — even from the real upstream's certificate — is refused and a
 * connection to the upstream is asked for; once the agent's own verified connection has seen the
 * upstream's key, pushes from that key are accepted and the key is kept in the store (an agent
 * restarted while the upstream is down still knows it). Real parts: the development server, TLS,
 * LevelDB.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { MAX_UPSTREAM_SPKIS, UpstreamPeers } from '../../src/agent/upstream-peers.ts';
import { PushListener } from '../../src/inbound/push-listener.ts';
import { buildRequestMessage, parseResponseMessage } from '../../src/kmip/message.ts';
import { notifyPayload } from '../../src/kmip/push.ts';
import { Operation, ResultStatus, Tag } from '../../src/kmip/tables.generated.ts';
import { silentLogger } from '../../src/log.ts';
import { tlsConnectionOptions } from '../../src/net/tls-options.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { spkiSha256, TtlvConnection } from '../../src/net/ttlv-connection.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { textString } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { startDevServer } from '../helpers/dev-server.ts';
import { until } from '../helpers/until.ts';

it('nothing learned: refused, a connection asked for; learned from the agent\'s own connection: accepted, and kept across a reopen', async () => {
  const dev = await startDevServer();
  const file = (name: string) => readFileSync(join(dev.dir, name));
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-learned-'));
  let store = await LevelStore.open(dir);
  const pool = new TlsPool(dev.endpoint);
  const peers = await UpstreamPeers.load(store, silentLogger);
  pool.onVerifiedPeer = (spki) => peers.record(spki);
  let learnAsked = 0;
  let upstreamReachable = false;
  const listener = await PushListener.start({
    host: '127.0.0.1', port: 0, ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key'),
    upstream: { learned: { get size() { return peers.size; }, has: (spki) => peers.has(spki), learn: async () => {
      learnAsked++;
      if (upstreamReachable) await pool.probe(5000);
      else throw new Error('upstream unreachable (in this test)');
    } } },
    apply: async () => undefined,
  });
  const notify = encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Notify, payload: notifyPayload('k', [{ name: 'Object Group', value: textString(Tag.AttributeValue, 'g') }]) }], { timeStamp: new Date() }));
  const fromUpstream = async (): Promise<number | 'refused'> => {
    try {
      const connection = await TtlvConnection.open(tlsConnectionOptions({ host: '127.0.0.1', port: listener.port, ca: file('ca.pem'), cert: file('server.pem'), key: file('server.key') }), 5000, 1 << 20);
      try {
        return parseResponseMessage(decodeTtlv(await connection.roundTrip(notify, 5000))).batchItems[0]!.resultStatus;
      } finally {
        connection.close();
      }
    } catch {
      return 'refused';
    }
  };
  try {
    assert.equal(learnAsked, 1, 'asked to learn at start, nothing being known');
    assert.equal(await fromUpstream(), 'refused', 'the real upstream, before the agent has seen its key');
    upstreamReachable = true;
    await pool.probe(5000); // the agent's own connection (a device request would do the same)
    const expected = spkiSha256(new X509Certificate(file('server.pem')).raw);
    assert.ok(peers.has(expected), 'the key the upstream presented is learned');
    assert.equal(await fromUpstream(), ResultStatus.Success);

    // Kept in the store: an agent restarted without reaching the upstream knows it.
    await until(async () => {
      for await (const _ of store.entries('upstream/spki/')) return true;
      return false;
    }, 'the learned key stored');
    await store.close();
    store = await LevelStore.open(dir);
    const reloaded = await UpstreamPeers.load(store, silentLogger);
    assert.ok(reloaded.has(expected));
    // The newest few are kept (a key server rotating its key).
    for (let i = 0; i < MAX_UPSTREAM_SPKIS + 2; i++) reloaded.record(`rotated-${i}`);
    assert.equal(reloaded.size, MAX_UPSTREAM_SPKIS);
    assert.ok(!reloaded.has(expected) && reloaded.has(`rotated-${MAX_UPSTREAM_SPKIS + 1}`));
  } finally {
    await listener.close();
    await pool.close();
    await store.close();
    await dev.stop();
  }
});
