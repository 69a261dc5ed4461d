/**
 * ARCHITECTURE.md invariant 6 under a crash: a Put is acknowledged only after it is durable. The
 * agent process is SIGKILLed right after the apply, before its acknowledgement leaves; the
 * development server therefore sends the Put again; the restarted agent acknowledges it without
 * applying it twice — the key is cached once and the device's outbox holds one entry for it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { dataDir } from '../../src/agent/data-dir.ts';
import { listCachedKeys } from '../../src/agent/key-cache.ts';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { freePort } from '../../src/bench/free-port.ts';
import { DeviceRegistry } from '../../src/devices/registry.ts';
import { parseRequestMessage } from '../../src/kmip/message.ts';
import { ObjectType, Operation } from '../../src/kmip/tables.generated.ts';
import { MasterKey } from '../../src/store/master-key.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { LevelStore } from '../../src/store/kv-store.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from '../helpers/client-interop-suite.ts';
import { startDevServer } from '../helpers/dev-server.ts';
import { until } from '../helpers/until.ts';

const CHILD = new URL('./push-child.ts', import.meta.url).pathname;

function startChild(args: string[], crash: boolean): { child: ChildProcess; ready: Promise<void>; stderr: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CRASH_AFTER_APPLY: crash ? 'Put' : '' } });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code, signal) => reject(new Error(`push child exited ${code ?? signal}: ${stderr}`)));
  });
  return { child, ready, stderr: () => stderr };
}

const exited = (child: ChildProcess) => new Promise<string | number | null>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(child.signalCode ?? child.exitCode) : child.once('exit', (code, signal) => resolve(signal ?? code))));

it('SIGKILL after the apply, before the acknowledgement: the resent Put is acknowledged, not applied twice', async () => {
  const listenPort = await freePort();
  const dev = await startDevServer({ pushTo: [{ host: '127.0.0.1', port: listenPort }], pushRetryMs: 200, pushMaxAttempts: 40 });
  const admin = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
  const data = mkdtempSync(join(tmpdir(), 'kmip-edge-push-crash-'));
  try {
    const uid = await admin.create(ObjectType.SymmetricKey, aesKey('crash-put'));
    await admin.activate(uid);
    // A device that may use the key, registered while the agent is stopped.
    const setup = await AgentCore.open({ data, client: admin });
    await new DeviceRegistry(setup.store, setup.masterKey).add('crash-device', { keys: [{ uniqueIdentifier: uid }] });
    await setup.close();

    const args = [data, dev.dir, String(dev.endpoint.port), String(listenPort)];
    const doomed = startChild(args, true);
    await doomed.ready;
    const put = dev.server.put(uid);
    assert.equal(await exited(doomed.child), 'SIGKILL');
    await until(() => /push Put .*: applied/.test(doomed.stderr()), 'the doomed agent to report the Put applied');

    const restarted = startChild(args, false);
    await restarted.ready;
    const [record] = await put;
    assert.equal(record!.acknowledged, true, `the resent Put is acknowledged: ${record!.lastError}`);
    assert.ok(record!.attempts >= 2, `${record!.attempts} attempts`);
    // The child logs before it answers, but its stderr may reach us after the acknowledgement does.
    await until(() => /push Put .*: duplicate/.test(restarted.stderr()), 'the restarted agent to report the Put as a duplicate');
    restarted.child.kill('SIGTERM');
    await exited(restarted.child);

    const store = await LevelStore.open(dataDir(data).store);
    try {
      assert.deepEqual((await listCachedKeys(store)).map((k) => k.uniqueIdentifier), [uid]);
      // The outbox also holds the Notify of the activation; the Put is there once, for the device.
      const masterKey = MasterKey.load(dataDir(data).masterKey);
      const puts: string[] = [];
      for await (const [key, sealed] of store.entries('outbox/')) {
        const request = parseRequestMessage(decodeTtlv(masterKey.open(sealed, key)));
        if (request.batchItems[0]!.operation === Operation.Put) puts.push(key);
      }
      assert.equal(puts.length, 1, `one relay entry for the Put: ${puts}`);
      assert.ok(puts[0]!.startsWith('outbox/crash-device/'));
    } finally {
      await store.close();
    }
  } finally {
    await admin.close();
    await dev.stop();
  }
});
