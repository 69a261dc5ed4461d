/**
 * The Put/Notify listener against peers that hold connections (issue #13.5), with real sockets to
 * a listener in a process of its own whose open descriptors are counted (/proc/PID/fd): TCP
 * connections that never start TLS, handshaken peers that go quiet between messages or in the
 * middle of one, more connections than the cap. Short configured timeouts; every wait is a
 * condition with a bound, never a timing threshold. Also: a valid Notify followed by garbage in
 * the same write is answered, then Invalid Message, then closed.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { buildRequestMessage, parseResponseMessage } from '../../src/kmip/message.ts';
import { notifyPayload } from '../../src/kmip/push.ts';
import { Operation, ResultReason, ResultStatus, Tag } from '../../src/kmip/tables.generated.ts';
import { tlsConnectionOptions } from '../../src/net/tls-options.ts';
import { textString } from '../../src/ttlv/build.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { TtlvFramer } from '../../src/ttlv/framer.ts';
import { ROOT } from '../helpers/cli.ts';
import { startDevServer } from '../helpers/dev-server.ts';
import { until } from '../helpers/until.ts';

const LIMITS = { maxConnections: 8, handshakeTimeoutMs: 400, readTimeoutMs: 400, idleTimeoutMs: 600 };

function notify(uid: string): Uint8Array {
  return encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation: Operation.Notify, payload: notifyPayload(uid, [{ name: 'Object Group', value: textString(Tag.AttributeValue, 'g') }]) }], { timeStamp: new Date() }));
}

describe('Put/Notify listener: stalled, idle and surplus connections are closed (descriptors counted)', () => {
  let dev: Awaited<ReturnType<typeof startDevServer>>;
  let child: ChildProcess;
  let port: number;
  let stderr = '';
  const file = (name: string) => readFileSync(join(dev.dir, name));
  const fds = () => readdirSync(`/proc/${child.pid}/fd`).length;
  const opened: Socket[] = [];
  let baseline: number;

  before(async () => {
    dev = await startDevServer();
    const data = mkdtempSync(join(tmpdir(), 'kmip-edge-listener-child-'));
    child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/inbound/push-listener-child.ts'), JSON.stringify({ pki: dev.dir, data, upstreamPort: dev.endpoint.port, listener: LIMITS })], { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (line: Buffer) => resolve((JSON.parse(line.toString()) as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`listener child exited ${code}: ${stderr}`)));
    });
    baseline = fds();
  });
  after(async () => {
    for (const socket of opened) socket.destroy();
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
    await dev.stop();
  });

  /** A TCP connection that sends nothing (or `bytes`), kept open from this side; resolves once connected. */
  const rawConnection = (bytes?: Uint8Array) => new Promise<Socket & { closedByPeer: boolean }>((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port }) as Socket & { closedByPeer: boolean };
    socket.closedByPeer = false;
    socket.on('error', () => undefined);
    socket.on('close', () => (socket.closedByPeer = true));
    socket.on('end', () => (socket.closedByPeer = true));
    socket.once('connect', () => {
      if (bytes) socket.write(bytes);
      resolve(socket);
    });
    opened.push(socket);
  });

  /** A handshaken connection with the upstream's own certificate. */
  const tlsConnection = () => new Promise<ReturnType<typeof tlsConnect> & { closedByPeer: boolean; received: Uint8Array[] }>((resolve, reject) => {
    const socket = tlsConnect(tlsConnectionOptions({ host: '127.0.0.1', port, ca: file('ca.pem'), cert: file('server.pem'), key: file('server.key') })) as ReturnType<typeof tlsConnect> & { closedByPeer: boolean; received: Uint8Array[] };
    socket.closedByPeer = false;
    socket.received = [];
    const framer = new TtlvFramer();
    socket.on('data', (chunk: Buffer) => socket.received.push(...framer.push(chunk)));
    socket.on('close', () => (socket.closedByPeer = true));
    socket.on('end', () => (socket.closedByPeer = true));
    socket.on('error', () => undefined);
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
    opened.push(socket);
  });

  it('TCP connections that never start TLS are closed at the handshake timeout, their descriptors freed', async () => {
    const sockets = await Promise.all(Array.from({ length: 6 }, () => rawConnection()));
    await until(() => fds() >= baseline + 6, 'the listener holding the connections', 10_000);
    await until(() => sockets.every((s) => s.closedByPeer), 'every stalled connection closed by the listener', 20_000);
    await until(() => fds() <= baseline, `the listener's descriptors back to ${baseline} (now ${fds()})`, 20_000);
  });

  it('a handshaken peer idle between messages, and one stopping in the middle of a message, are disconnected', async () => {
    const idle = await tlsConnection();
    const answered = await tlsConnection();
    answered.write(notify('idle-test'));
    await until(() => answered.received.length === 1, 'the Notify answered', 10_000);
    const partial = await tlsConnection();
    partial.write(notify('partial').subarray(0, 20)); // a header and a bit: the rest never comes
    await until(() => idle.closedByPeer && answered.closedByPeer && partial.closedByPeer, 'the quiet peers disconnected', 20_000);
    assert.equal(parseResponseMessage(decodeTtlv(answered.received[0]!)).batchItems[0]!.resultStatus, ResultStatus.Success);
    await until(() => fds() <= baseline, `the listener's descriptors back to ${baseline} (now ${fds()})`, 20_000);
  });

  it(`at most ${LIMITS.maxConnections} connections at once: the others are closed at once; the upstream gets through after`, async () => {
    const sockets = await Promise.all(Array.from({ length: LIMITS.maxConnections * 3 }, () => rawConnection()));
    await until(() => sockets.filter((s) => s.closedByPeer).length >= LIMITS.maxConnections * 2, 'the connections over the cap closed', 20_000);
    assert.ok(fds() <= baseline + LIMITS.maxConnections, `the listener holds ${fds() - baseline} connections, cap ${LIMITS.maxConnections}`);
    await until(() => fds() <= baseline, 'the capped ones timed out too', 20_000);
    const upstream = await tlsConnection();
    upstream.write(notify('after-the-flood'));
    await until(() => upstream.received.length === 1, 'the upstream answered after the flood', 10_000);
    assert.equal(parseResponseMessage(decodeTtlv(upstream.received[0]!)).batchItems[0]!.resultStatus, ResultStatus.Success);
    upstream.destroy();
  });

  it('a valid Notify and garbage in one write: the Notify is answered, then Invalid Message, then the connection is closed', async () => {
    const peer = await tlsConnection();
    peer.write(Buffer.concat([notify('before-garbage'), Buffer.from('this is not TTLV at all')]));
    await until(() => peer.closedByPeer, 'the listener closed the connection', 10_000);
    const answers = peer.received.map((m) => parseResponseMessage(decodeTtlv(m)).batchItems[0]!);
    assert.deepEqual(answers.map((a) => [a.resultStatus, a.resultReason]), [[ResultStatus.Success, undefined], [ResultStatus.OperationFailed, ResultReason.InvalidMessage]]);
  });
});
