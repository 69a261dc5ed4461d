/** The product's processes for end-to-end tests: started from the built CLI, as users run them. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyBlockOf, keyMaterialOf } from '../../src/kmip/payloads.ts';
import { CryptographicAlgorithm, CryptographicUsageMask, ObjectType, Tag } from '../../src/kmip/tables.generated.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { enumeration, integer } from '../../src/ttlv/build.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey } from './client-interop-suite.ts';
import { ROOT, runCli } from './cli.ts';

const BIN = join(ROOT, 'dist/kmip-edge.mjs');

export function startProcess(args: string[]): Promise<{ child: ChildProcess; ready: Record<string, unknown> }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', (line: Buffer) => resolve({ child, ready: JSON.parse(line.toString()) as Record<string, unknown> }));
    child.once('exit', (code) => reject(new Error(`${args[0]} exited ${code}: ${stderr}`)));
  });
}

/** A KMIP 1.2 client of the development server in `kms` (its client certificate), as an administrator's. */
export function adminClient(kms: string, port: number): KmipClient {
  return new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port, ca: readFileSync(join(kms, 'ca.pem')), cert: readFileSync(join(kms, 'client.pem')), key: readFileSync(join(kms, 'client.key')) }), version: { major: 1, minor: 2 } });
}

/** An HMAC-SHA256 key on the server (for nonce-MAC): its Unique Identifier and its material as hex. */
export async function createMacKey(admin: KmipClient): Promise<{ uid: string; material: string }> {
  const uid = await admin.create(ObjectType.SymmetricKey, [
    { name: 'Cryptographic Algorithm', value: enumeration(Tag.AttributeValue, CryptographicAlgorithm.HMAC_SHA256) },
    { name: 'Cryptographic Length', value: integer(Tag.AttributeValue, 256) },
    { name: 'Cryptographic Usage Mask', value: integer(Tag.AttributeValue, CryptographicUsageMask.MACGenerate | CryptographicUsageMask.MACVerify) },
  ]);
  return { uid, material: toHex(keyMaterialOf(keyBlockOf((await admin.get(uid)).object))) };
}

/** An active AES key on the development server, created over mutual TLS as an administrator would. */
export async function createActiveKey(kms: string, port: number, name: string, attributes?: Parameters<typeof aesKey>[2]): Promise<string> {
  const admin = adminClient(kms, port);
  try {
    const uid = await admin.create(ObjectType.SymmetricKey, aesKey(name, undefined, attributes));
    await admin.activate(uid);
    return uid;
  } finally {
    await admin.close();
  }
}

/** `kmip-edge run` options naming the development server in `kms` as the upstream. */
export function upstreamArgs(kms: string, port: number): string[] {
  return ['--upstream', `127.0.0.1:${port}`, '--upstream-ca', join(kms, 'ca.pem'), '--upstream-cert', join(kms, 'client.pem'), '--upstream-key', join(kms, 'client.key')];
}

export function exited(child: ChildProcess): Promise<number | null> {
  // A process that already ended has exitCode set, or signalCode when a signal ended it.
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))));
}

/** Asks a process to stop (SIGTERM: the agent drains and exits) and resolves with its exit code. */
export function terminate(child: ChildProcess): Promise<number | null> {
  child.kill('SIGTERM');
  return exited(child);
}


/**
 * A work folder for one end-to-end test: `kmip-edge dev-server` running with its PKI in `kms/`
 * (extra flags in `devServerArgs`), and `data`, the path for the agent's data folder.
 */
export async function startKeyServer(name: string, devServerArgs: string[] = []): Promise<{ work: string; kms: string; data: string; port: number; server: ChildProcess }> {
  const work = mkdtempSync(join(tmpdir(), `kmip-edge-${name}-`));
  const kms = join(work, 'kms');
  const { child, ready } = await startProcess(['dev-server', '--port', '0', '--dir', kms, ...devServerArgs]);
  return { work, kms, data: join(work, 'agent'), port: ready.port as number, server: child };
}

/** `kmip-edge device add` for `id`, allowed the keys `uids`; fails unless it succeeds; the device key in hex. */
export function addDevice(data: string, id: string, ...uids: string[]): string {
  const added = runCli(['device', 'add', '--data', data, '--id', id, ...uids.flatMap((uid) => ['--key-uid', uid])]);
  if (added.status !== 0) throw new Error(`device add ${id} exited ${added.status}: ${added.stderr}`);
  return (JSON.parse(added.stdout) as { key: string }).key;
}
