/**
 * The local KMIP endpoint's door (issue #16): KMIP over mutual TLS, the client identified by its
 * certificate's key in the registry, TTLV framing with its limits. Real TLS, a real LevelDB
 * registry, our KmipClient as a registered client, and raw TLS peers for what a misbehaving
 * client does. Every refusal is checked to have served nothing (the handler never called).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { clientCertificate } from '../../src/endpoint/client-registry.ts';
import { KMIP_LISTENER_LIMITS } from '../../src/endpoint/kmip-listener.ts';
import { buildRequestMessage, parseResponseMessage } from '../../src/kmip/message.ts';
import { payload } from '../../src/kmip/payloads.ts';
import { Operation, ResultReason, ResultStatus, Tag } from '../../src/kmip/tables.generated.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { structure, textString } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { fromHex } from '../../src/ttlv/hex.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { until } from '../helpers/until.ts';
import { RawPeer, startEndpoint, testPki, type Endpoint } from './endpoint-fixture.ts';

const discover = (minor = 2) => encodeTtlv(buildRequestMessage({ major: 1, minor }, [{ operation: Operation.DiscoverVersions, payload: payload.discoverVersions([]) }]));
const query = () => encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Query, payload: [] }]));

function clientOf(endpoint: Endpoint, identity = endpoint.pki.library): KmipClient {
  return new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port: endpoint.listener.port, ca: endpoint.pki.ca.cert, cert: identity.cert, key: identity.key }, { maxConnections: 1 }), version: { major: 1, minor: 2 }, timeoutMs: 5000 });
}

function resultOf(response: Uint8Array) {
  return parseResponseMessage(decodeTtlv(response)).batchItems[0]!;
}

describe('a registered client is served', () => {
  let endpoint: Endpoint;
  before(async () => (endpoint = await startEndpoint()));
  after(() => endpoint.stop());

  it('Discover Versions through our KMIP client: the handler sees the registered principal, with a unique request id each time', async () => {
    const client = clientOf(endpoint);
    try {
      assert.deepEqual(await client.discoverVersions([{ major: 1, minor: 2 }]), [{ major: 1, minor: 2 }, { major: 1, minor: 0 }]);
      await client.discoverVersions([{ major: 1, minor: 2 }]);
    } finally {
      await client.close();
    }
    assert.equal(endpoint.handler.calls.length, 2);
    for (const call of endpoint.handler.calls) {
      assert.equal(call.principal.kind, 'client');
      assert.equal(call.principal.id, 'lib-1');
      assert.deepEqual(call.principal.keys, [{ objectGroup: 'tapes' }]);
      assert.match(call.requestId, /^lib-1:[0-9a-f]{12}:\d+:\d+$/);
    }
    assert.notEqual(endpoint.handler.calls[0]!.requestId, endpoint.handler.calls[1]!.requestId);
    assert.equal(endpoint.listener.counts.connections.accepted, 1);
    assert.deepEqual(endpoint.listener.counts.requests(), [{ operation: 'DiscoverVersions', result: 'Success', count: 2 }]);
  });

  it('requests sent together on one connection are answered in order, each once', async () => {
    endpoint.handler.calls.length = 0;
    const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
    await peer.secured;
    // Three messages in one write; the first waits in the handler, and still comes first.
    let open!: () => void;
    endpoint.handler.gate = new Promise((resolve) => (open = resolve));
    peer.write(Buffer.concat([discover(2), query(), discover(0)]));
    await until(() => endpoint.handler.calls.length === 1, 'the first request in the handler');
    assert.equal(peer.responses.length, 0);
    endpoint.handler.gate = undefined;
    open();
    await until(() => peer.responses.length === 3, 'three answers');
    const versions = peer.responses.map((response) => parseResponseMessage(decodeTtlv(response)));
    assert.deepEqual(versions.map((message) => [message.protocolVersion.minor, message.batchItems[0]!.operation]), [[2, Operation.DiscoverVersions], [2, Operation.Query], [0, Operation.DiscoverVersions]]);
    const sequence = endpoint.handler.calls.map((call) => Number(call.requestId.split(':')[3]));
    assert.deepEqual(sequence, [1, 2, 3]);
    peer.socket.destroy();
  });

  it('an update of the client applies from its next request; a removal closes its open connection', async () => {
    endpoint.handler.calls.length = 0;
    const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
    await peer.secured;
    peer.write(discover());
    await until(() => peer.responses.length === 1, 'an answer');
    await endpoint.registry.update('lib-1', { operations: ['Get', 'Locate'] });
    peer.write(discover());
    await until(() => peer.responses.length === 2, 'the second answer');
    assert.deepEqual(endpoint.handler.calls.map((call) => call.principal.operations), [
      ['DiscoverVersions', 'Query', 'Locate', 'Get', 'GetAttributes', 'GetAttributeList', 'Check', 'ObtainLease', 'Create', 'Activate', 'AddAttribute', 'ModifyAttribute'],
      ['Get', 'Locate'],
    ]);
    const certificate = clientCertificate(new X509Certificate(endpoint.pki.library.cert));
    assert.equal(await endpoint.registry.remove('lib-1'), true);
    peer.write(discover());
    await peer.closed;
    assert.equal(peer.responses.length, 2, 'nothing answered after the removal');
    assert.equal(endpoint.handler.calls.length, 2);
    await endpoint.registry.add('lib-1', certificate, { keys: [{ objectGroup: 'tapes' }] });
  });
});

describe('refusals: each serves nothing', () => {
  let endpoint: Endpoint;
  before(async () => {
    testPki();
    endpoint = await startEndpoint({ handshakeTimeoutMs: 400, idleTimeoutMs: 600, readTimeoutMs: 600, maxConnections: 3 });
  });
  after(() => endpoint.stop());

  const nothingServed = () => assert.equal(endpoint.handler.calls.length, 0, 'the handler was never called');

  it('a client certificate from another CA: the handshake is refused (TLS 1.3 and 1.2)', async () => {
    // In TLS 1.3 the client's side completes before the server has checked the client's
    // certificate: the request may be written, and the server's refusal closes the connection.
    const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.impostor, endpoint.pki.ca.cert);
    peer.secured.then(() => peer.write(discover()), () => undefined);
    await peer.closed;
    assert.equal(peer.bytesReceived, 0);
    // In TLS 1.2 the server's verdict comes before the client's Finished: the handshake fails.
    const old = RawPeer.connect(endpoint.listener.port, endpoint.pki.impostor, endpoint.pki.ca.cert, { maxVersion: 'TLSv1.2' });
    await assert.rejects(old.secured);
    await old.closed;
    assert.equal(old.bytesReceived, 0);
    await until(() => endpoint.listener.counts.connections.handshake_refused === 2, 'both refusals counted');
    assert.ok(endpoint.logs.some((line) => line.event === 'kmip_connection_refused'));
    nothingServed();
  });

  it('no client certificate at all: the handshake is refused', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port: endpoint.listener.port, ca: endpoint.pki.ca.cert, minVersion: 'TLSv1.2' });
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.on('secureConnect', () => socket.write(discover()));
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('close', resolve));
    assert.equal(received, 0);
    nothingServed();
  });

  it('a certificate of the same CA that is not registered: closed after the handshake, logged with its fingerprint', async () => {
    const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.stranger, endpoint.pki.ca.cert);
    await peer.secured; // the CA signed it: TLS completes, and then the registry says no
    peer.write(discover());
    await peer.closed;
    assert.equal(peer.bytesReceived, 0);
    const fingerprint = clientCertificate(new X509Certificate(endpoint.pki.stranger.cert)).spkiSha256;
    const logged = endpoint.logs.find((line) => line.event === 'kmip_client_unregistered');
    assert.equal(logged?.spkiSha256, fingerprint);
    assert.equal(logged?.subjectCN, 'stranger');
    assert.match(String(logged?.msg), /kmip-edge client add/);
    assert.equal(endpoint.listener.counts.connections.unregistered, 1);
    nothingServed();
  });

  it('a message that is not a KMIP message (bad tag): Invalid Message, connection closed, the handler never asked', async () => {
    const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
    await peer.secured;
    peer.write(fromHex('43 00 78 01 00 00 00 00'));
    await peer.closed;
    assert.equal(peer.responses.length, 1);
    const item = resultOf(peer.responses[0]!);
    assert.equal(item.resultStatus, ResultStatus.OperationFailed);
    assert.equal(item.resultReason, ResultReason.InvalidMessage);
    nothingServed();
  });

  it('a well-framed message that is not a Request Message: the handler says invalid, Invalid Message, connection closed, nothing after it answered', async () => {
    const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
    await peer.secured;
    const malformed = encodeTtlv(structure(Tag.RequestMessage, [textString(Tag.ResultMessage, 'no header here')]));
    peer.write(Buffer.concat([malformed, discover()]));
    await peer.closed;
    assert.equal(peer.responses.length, 1, 'the message after the malformed one is not answered');
    assert.equal(resultOf(peer.responses[0]!).resultReason, ResultReason.InvalidMessage);
    assert.equal(endpoint.handler.calls.length, 1, 'the malformed message only');
    assert.equal(endpoint.listener.counts.connections.invalid_message, 1);
    endpoint.handler.calls.length = 0;
  });

  it('a length header of 200 MB: refused from the 8-byte header alone, nothing buffered for it', async () => {
    const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
    await peer.secured;
    const before = process.memoryUsage().arrayBuffers;
    // Request Message, Structure, length 200,000,000 — and not one byte of it sent.
    peer.write(fromHex('42 00 78 01 0B EB C2 00'));
    await peer.closed;
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.equal(peer.responses.length, 1);
    const item = resultOf(peer.responses[0]!);
    assert.equal(item.resultReason, ResultReason.InvalidMessage);
    assert.match(item.resultMessage ?? '', /200000008 bytes exceeds maxMessageBytes 262144/);
    assert.ok(grown < 16 << 20, `array buffers grew by ${grown} bytes, not the 200 MB the header claims`);
    assert.ok(endpoint.logs.some((line) => line.event === 'kmip_framing_lost' && line.code === 'TTLV_TOO_LARGE'));
    nothingServed();
  });

  it('a peer that connects and says nothing: closed after the handshake timeout', async () => {
    const socket = tcpConnect(endpoint.listener.port, '127.0.0.1');
    socket.on('error', () => undefined);
    const timedOutBefore = endpoint.listener.counts.connections.timed_out;
    await new Promise((resolve) => socket.once('close', resolve));
    assert.equal(endpoint.listener.counts.connections.timed_out, timedOutBefore + 1);
    nothingServed();
  });

  it('a registered client that goes quiet after the handshake, or stops half-way through a message: closed after the timeout', async () => {
    const quiet = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
    const halfway = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
    await Promise.all([quiet.secured, halfway.secured]);
    halfway.write(discover().subarray(0, 20));
    await Promise.all([quiet.closed, halfway.closed]);
    assert.equal(quiet.bytesReceived + halfway.bytesReceived, 0);
    assert.ok(endpoint.logs.some((line) => line.event === 'kmip_connection_timed_out' && line.partialMessage === true));
    nothingServed();
  });

  it('too many connections: the one over the limit is dropped before its handshake, and the endpoint serves again once one closes', async () => {
    const held = [0, 1, 2].map(() => RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert));
    await Promise.all(held.map((peer) => peer.secured));
    const over = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
    await assert.rejects(over.secured);
    assert.equal(endpoint.listener.counts.connections.over_capacity, 1);
    nothingServed();
    held[0]!.socket.destroy();
    await held[0]!.closed;
    await until(async () => {
      const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
      try {
        await peer.secured;
        peer.write(discover());
        await until(() => peer.responses.length === 1, 'an answer', 2000);
        return true;
      } catch {
        return false;
      } finally {
        peer.socket.destroy();
      }
    }, 'a connection served again');
    for (const peer of held) peer.socket.destroy();
    await until(() => endpoint.listener.openConnections === 0, 'the connections closed on the endpoint side');
    endpoint.handler.calls.length = 0;
  });

  it('a client that sends without reading the answers: its answers stop being worked out, and it is disconnected', async () => {
    const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
    await peer.secured;
    peer.socket.pause(); // reads nothing
    endpoint.handler.padding = 60_000; // each answer ~60 KB
    const requests = 400; // ~24 MB of answers: more than loopback socket buffers hold
    peer.write(Buffer.concat(Array.from({ length: requests }, () => query())));
    // A peer that does not read does not see the close either: the endpoint's side is watched.
    await until(() => endpoint.listener.openConnections === 0, 'the endpoint to drop the connection', 30_000);
    endpoint.handler.padding = 0;
    assert.ok(endpoint.logs.some((line) => line.event === 'kmip_connection_timed_out'));
    peer.socket.resume();
    await peer.closed;
    assert.ok(endpoint.handler.calls.length < requests, `${endpoint.handler.calls.length} of ${requests} answered before the disconnect`);
    endpoint.handler.calls.length = 0;
  });

  it('random bytes from registered clients (random headers, lengths, truncations): each connection answered or closed, the endpoint still serves', async () => {
    let seed = 0x5eed;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) & 0xff;
    const before = endpoint.listener.counts.connections.framing_lost + endpoint.listener.counts.connections.invalid_message;
    for (let round = 0; round < 20; round++) {
      const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
      await peer.secured;
      const body = Buffer.from(Array.from({ length: 8 + (random() << 2) }, random));
      // Half start like a Request Message, so that the body (or the length) is what is wrong.
      if (round % 2 === 0) body.set([0x42, 0x00, 0x78, 0x01, 0, 0, (random() & 0x0f) << 1, random() & 0xf8]);
      peer.write(body);
      peer.socket.end();
      await peer.closed;
    }
    assert.ok(endpoint.listener.counts.connections.framing_lost + endpoint.listener.counts.connections.invalid_message > before);
    const client = clientOf(endpoint);
    try {
      assert.equal((await client.discoverVersions([{ major: 1, minor: 2 }])).length, 2);
    } finally {
      await client.close();
    }
    endpoint.handler.calls.length = 0;
  });
});

describe('connections per client: one client cannot take them all', () => {
  let endpoint: Endpoint;
  before(async () => (endpoint = await startEndpoint({ maxConnections: 8, maxConnectionsPerClient: 2 })));
  after(() => endpoint.stop());

  /** A connection of `identity` that got an answer to Discover Versions. */
  async function served(identity = endpoint.pki.library): Promise<RawPeer> {
    const peer = RawPeer.connect(endpoint.listener.port, identity, endpoint.pki.ca.cert);
    await peer.secured;
    const before = peer.responses.length;
    peer.write(discover());
    await until(() => peer.responses.length === before + 1 || peer.isClosed, 'an answer or the close');
    assert.equal(peer.responses.length, before + 1, 'answered');
    return peer;
  }

  it('the connection over the client\'s limit is closed after the handshake, unserved, and logged naming the client; its others and another client are served', async () => {
    assert.equal(KMIP_LISTENER_LIMITS.maxConnectionsPerClient, 16, 'the default');
    const held = [await served(), await served()];
    const callsBefore = endpoint.handler.calls.length;
    const over = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
    await over.secured; // TLS completes (the CA signed it); then the count says no
    over.write(discover());
    await over.closed;
    assert.equal(over.bytesReceived, 0, 'nothing answered');
    assert.equal(endpoint.handler.calls.length, callsBefore, 'the handler never asked');
    assert.equal(endpoint.listener.counts.connections.over_client_limit, 1);
    const logged = endpoint.logs.filter((line) => line.event === 'kmip_client_connection_limit');
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.client, 'lib-1');
    assert.equal(logged[0]!.maxConnectionsPerClient, 2);
    assert.equal(logged[0]!.level, 40, 'a warning');

    // Unaffected: lib-1's open connections, and lib-2 (its own two).
    for (const peer of held) {
      peer.write(discover());
      await until(() => peer.responses.length === 2, 'a held connection answered again');
    }
    const others = [await served(endpoint.pki.library2), await served(endpoint.pki.library2)];
    assert.deepEqual([...new Set(endpoint.handler.calls.slice(callsBefore).map((call) => call.principal.id))].sort(), ['lib-1', 'lib-2']);

    // One of lib-1's closes: its place is free again (counted down when the endpoint sees the close).
    held[0]!.socket.destroy();
    await until(async () => {
      const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
      try {
        await peer.secured;
        peer.write(discover());
        await until(() => peer.responses.length === 1 || peer.isClosed, 'an answer or the close', 2000);
        return peer.responses.length === 1;
      } finally {
        peer.socket.destroy();
      }
    }, 'a new connection of lib-1 served once one of its connections closed');
    for (const peer of [...held, ...others]) peer.socket.destroy();
    await until(() => endpoint.listener.openConnections === 0 && endpoint.listener.connectionsOf('lib-1') === 0 && endpoint.listener.connectionsOf('lib-2') === 0, 'every connection closed on the endpoint side, and counted down');
  });

  it('many connections of one client at once: never more than its limit served, the rest refused, and the endpoint\'s total is not reached', async () => {
    const refusedBefore = endpoint.listener.counts.connections.over_client_limit;
    const peers = Array.from({ length: 6 }, () => RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert));
    await Promise.all(peers.map((peer) => peer.secured.catch(() => undefined)));
    // Every connection is either served (it stays open, counted) or refused (closed); wait for the endpoint to decide each.
    await until(() => endpoint.listener.counts.connections.over_client_limit - refusedBefore === 4, 'four refused');
    for (const peer of peers) if (!peer.isClosed) peer.write(discover());
    await until(() => peers.filter((peer) => peer.responses.length === 1).length === 2, 'two answered');
    assert.equal(endpoint.listener.connectionsOf('lib-1'), 2);
    await until(() => peers.filter((peer) => peer.isClosed).length === 4, 'four closed');
    assert.equal(endpoint.listener.counts.connections.over_capacity, 0, 'the total limit (8) was never the reason');
    const another = await served(endpoint.pki.library2);
    for (const peer of [...peers, another]) peer.socket.destroy();
    await until(() => endpoint.listener.openConnections === 0 && endpoint.listener.connectionsOf('lib-1') === 0, 'every connection closed on the endpoint side, and counted down');
  });
});

describe('timeouts: a short read time, a long idle time', () => {
  const READ_MS = 300;
  const IDLE_MS = 2500;
  let endpoint: Endpoint;
  before(async () => {
    testPki();
    endpoint = await startEndpoint({ readTimeoutMs: READ_MS, idleTimeoutMs: IDLE_MS });
  });
  after(() => endpoint.stop());

  it('quiet between messages for longer than the read time is allowed; the connection closes only once it was idle for the idle time', async () => {
    const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
    await peer.secured;
    peer.write(discover());
    await until(() => peer.responses.length === 1, 'the first answer');
    await new Promise((resolve) => setTimeout(resolve, 3 * READ_MS)); // several read times, well within the idle time
    peer.write(discover());
    await until(() => peer.responses.length === 2, 'the answer after a pause longer than the read time');
    const lastExchange = Date.now();
    await peer.closed;
    // Closed when the timer fires after the idle time: never before it (the timer's own slack aside).
    assert.ok(Date.now() - lastExchange >= IDLE_MS - 50, `closed ${Date.now() - lastExchange} ms after the last exchange`);
    assert.ok(endpoint.logs.some((line) => line.event === 'kmip_connection_timed_out' && line.partialMessage === false));
  });

  it('half a message: closed after the read time, not the idle time', async () => {
    const peer = RawPeer.connect(endpoint.listener.port, endpoint.pki.library, endpoint.pki.ca.cert);
    await peer.secured;
    const started = Date.now();
    peer.write(discover().subarray(0, 20));
    await peer.closed;
    assert.ok(Date.now() - started < IDLE_MS, `closed ${Date.now() - started} ms after the half message`);
    assert.equal(peer.responses.length, 0);
  });
});
