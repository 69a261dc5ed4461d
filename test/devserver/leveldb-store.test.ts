/**
 * The development server with `--store leveldb`, as a real process: what it acknowledged survives
 * SIGKILL and a restart (every request's changes are one synced batch before the response).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { keyBlockOf, keyMaterialOf } from '../../src/kmip/payloads.ts';
import { ObjectType, Tag, UsageLimitsUnit } from '../../src/kmip/tables.generated.ts';
import { optionalValue } from '../../src/kmip/tree.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { enumeration, longInteger, structure, textString } from '../../src/ttlv/build.ts';
import { toHex } from '../../src/ttlv/hex.ts';
import { ItemType } from '../../src/ttlv/item.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { aesKey, attributeValue } from '../helpers/client-interop-suite.ts';
import { ROOT } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-dev-level-'));

async function start(): Promise<{ child: ChildProcess; client: KmipClient }> {
  const child = spawn(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), 'dev-server', '--port', '0', '--dir', dir, '--store', 'leveldb'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = await new Promise<{ port: number }>((resolve, reject) => {
    child.stdout!.once('data', (line: Buffer) => resolve(JSON.parse(line.toString()) as { port: number }));
    child.once('exit', (code) => reject(new Error(`dev-server exited ${code}`)));
  });
  const endpoint = { host: '127.0.0.1', port: ready.port, ca: readFileSync(join(dir, 'ca.pem')), cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')) };
  return { child, client: new KmipClient({ transport: new TlsPool(endpoint), version: { major: 1, minor: 2 } }) };
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

it('objects, attributes and usage counts acknowledged before a SIGKILL are there after the restart', async () => {
  const first = await start();
  const limits = structure(Tag.AttributeValue, [longInteger(Tag.UsageLimitsTotal, 1000n), enumeration(Tag.UsageLimitsUnit, UsageLimitsUnit.Byte)]);
  const uid = await first.client.create(ObjectType.SymmetricKey, aesKey('durable', undefined, [{ name: 'Usage Limits', value: limits }]));
  await first.client.activate(uid);
  await first.client.getUsageAllocation(uid, 400n);
  await first.client.addAttribute(uid, { name: 'x-owner', value: textString(Tag.AttributeValue, 'tape-7') });
  const material = toHex(keyMaterialOf(keyBlockOf((await first.client.get(uid)).object)));
  await first.client.close();
  await kill(first.child);

  const second = await start();
  try {
    assert.equal(toHex(keyMaterialOf(keyBlockOf((await second.client.get(uid)).object))), material);
    const { attributes } = await second.client.getAttributes(uid, ['State', 'x-owner', 'Usage Limits']);
    assert.equal(attributeValue(attributes, 'State'), 2);
    assert.equal(attributeValue(attributes, 'x-owner'), 'tape-7');
    const usage = attributes.find((a) => a.name === 'Usage Limits')!.value!;
    assert.equal(optionalValue(usage, Tag.UsageLimitsCount, ItemType.LongInteger), 600n);
    const next = await second.client.create(ObjectType.SymmetricKey, aesKey('after-restart'));
    assert.notEqual(next, uid, 'identifiers are not reused after a restart');
  } finally {
    await second.client.close();
    await kill(second.child);
  }
});
