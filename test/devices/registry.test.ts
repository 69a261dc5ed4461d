/** The device registry and `kmip-edge device add|list|remove`. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { keyAllowed } from '../../src/devices/registry.ts';
import { runCli } from '../helpers/cli.ts';

it('device add prints the key once; list never shows it; the store keeps it sealed; remove', () => {
  const data = mkdtempSync(join(tmpdir(), 'kmip-edge-devices-'));
  const added = runCli(['device', 'add', '--data', data, '--id', 'tape-drive-7', '--suite', 'chacha20-poly1305', '--key-uid', 'k1', '--key-group', 'tapes']);
  assert.equal(added.status, 0, added.stderr);
  const device = JSON.parse(added.stdout) as { id: string; suite: string; key: string };
  assert.equal(device.id, 'tape-drive-7');
  assert.equal(device.suite, 'chacha20-poly1305');
  assert.match(device.key, /^[0-9a-f]{64}$/);
  assert.equal(runCli(['device', 'add', '--data', data, '--id', 'tape-drive-7']).status, 2, 'an id in use is refused');
  assert.equal(runCli(['device', 'add', '--data', data, '--id', 'bad id!']).status, 2);
  const listed = runCli(['device', 'list', '--data', data]);
  const { devices } = JSON.parse(listed.stdout) as { devices: { id: string; keys: unknown[] }[] };
  assert.deepEqual(devices.map((d) => d.id), ['tape-drive-7']);
  assert.deepEqual(devices[0]!.keys, [{ uniqueIdentifier: 'k1' }, { objectGroup: 'tapes' }]);
  assert.ok(!listed.stdout.includes(device.key), 'list shows no key');
  const files = Buffer.concat(readdirSync(join(data, 'store')).map((f) => readFileSync(join(data, 'store', f))));
  assert.ok(files.includes(Buffer.from('tape-drive-7')));
  assert.ok(!files.includes(Buffer.from(device.key, 'hex')) && !files.includes(Buffer.from(device.key)), 'the device key is not in the store in clear');
  assert.deepEqual(JSON.parse(runCli(['device', 'remove', '--data', data, '--id', 'tape-drive-7']).stdout), { id: 'tape-drive-7', removed: true });
  assert.deepEqual(JSON.parse(runCli(['device', 'list', '--data', data]).stdout), { devices: [] });
});

it('key allow-lists match by Unique Identifier, Name or Object Group', () => {
  const device = { keys: [{ uniqueIdentifier: 'k1' }, { name: 'tape-key' }, { objectGroup: 'tapes' }] };
  assert.equal(keyAllowed(device, { uniqueIdentifier: 'k1', names: [], objectGroups: [] }), true);
  assert.equal(keyAllowed(device, { uniqueIdentifier: 'k2', names: ['tape-key'], objectGroups: [] }), true);
  assert.equal(keyAllowed(device, { uniqueIdentifier: 'k3', names: [], objectGroups: ['tapes'] }), true);
  assert.equal(keyAllowed(device, { uniqueIdentifier: 'k4', names: ['other'], objectGroups: ['disks'] }), false);
  assert.equal(keyAllowed({ keys: [] }, { uniqueIdentifier: 'k1', names: [], objectGroups: [] }), false);
});
