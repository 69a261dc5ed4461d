/**
 * `kmip-edge backup`, `restore` and `master-key rotate` from the built CLI, on stopped agents'
 * folders (the running agent and SIGKILLs: test/crash/backup-crash.test.ts, rotation-crash.test.ts):
 * the master key handling (left out by default, --include-master-key, --master-key, fingerprints),
 * an altered backup, --replace, and each operator mistake as one line, exit 2, nothing changed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/cli.ts';

const work = mkdtempSync(join(tmpdir(), 'kmip-edge-backup-cli-'));
let n = 0;
const fresh = (name = 'd') => join(work, `${name}${n++}`);

/** An agent folder with two devices (`device add` on a stopped agent creates store and master key). */
function agentFolder(): string {
  const data = fresh('agent');
  for (const id of ['cam-1', 'cam-2']) assert.equal(runCli(['device', 'add', '--data', data, '--id', id]).status, 0);
  return data;
}

function ok(args: string[]): Record<string, unknown> {
  const run = runCli(args);
  assert.equal(run.status, 0, `${args.join(' ')}: ${run.stderr}`);
  return JSON.parse(run.stdout) as Record<string, unknown>;
}

/** Exit 2 with exactly one line on stderr matching `pattern`, nothing on stdout. */
function refused(args: string[], pattern: RegExp): void {
  const run = runCli(args);
  assert.equal(run.status, 2, `${args.join(' ')}: ${run.stdout}${run.stderr}`);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /^kmip-edge: [^\n]+\n$/);
  assert.match(run.stderr, pattern);
}

const devices = (data: string) => (ok(['device', 'list', '--data', data]).devices as { id: string }[]).map((d) => d.id);

describe('backup, restore, master-key rotate (CLI)', () => {
  it('a backup leaves the master key out; a restore needs it and checks its fingerprint', () => {
    const data = agentFolder();
    const file = join(work, 'plain.kebak');
    const run = runCli(['backup', '--data', data, '--out', file]);
    assert.equal(run.status, 0, run.stderr);
    const summary = JSON.parse(run.stdout) as { backup: string; records: number; masterKey: { fingerprint: string; included: boolean }; source: string };
    assert.deepEqual([summary.backup, summary.records, summary.masterKey.included, summary.source], [file, 2, false, 'stopped agent store']);
    assert.match(run.stderr, new RegExp(`the master key is not in the backup; keep .*master.key \\(fingerprint ${summary.masterKey.fingerprint}\\) backed up apart`));
    assert.ok(!readFileSync(file).includes(readFileSync(join(data, 'master.key'))));

    const target = fresh('restore');
    refused(['restore', '--data', target, '--from', file], /the backup does not hold its master key \(fingerprint [0-9a-f]{16}\); give the master key kept apart with --master-key FILE/);
    const other = agentFolder();
    refused(['restore', '--data', target, '--from', file, '--master-key', join(other, 'master.key')], /has fingerprint [0-9a-f]{16}, the backup was made under [0-9a-f]{16}/);
    const restored = ok(['restore', '--data', target, '--from', file, '--master-key', join(data, 'master.key')]);
    assert.equal(restored.records, 2);
    assert.ok(readFileSync(join(target, 'master.key')).equals(readFileSync(join(data, 'master.key'))));
    assert.equal(statSync(join(target, 'master.key')).mode & 0o777, 0o600);
    assert.deepEqual(devices(target), ['cam-1', 'cam-2']);
    // Into a folder with another master key: refused, the folder untouched.
    refused(['restore', '--data', other, '--from', file, '--master-key', join(data, 'master.key')], /already has another master key/);
    assert.deepEqual(devices(other), ['cam-1', 'cam-2']);
  });

  it('--include-master-key: the backup restores alone', () => {
    const data = agentFolder();
    const file = join(work, 'with-key.kebak');
    const run = runCli(['backup', '--data', data, '--out', file, '--include-master-key']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /the backup holds the master key: keep it as secret as the data folder itself/);
    const target = fresh('restore');
    assert.equal((ok(['restore', '--data', target, '--from', file]).masterKey as { from: string }).from, 'the backup');
    assert.ok(readFileSync(join(target, 'master.key')).equals(readFileSync(join(data, 'master.key'))));
    assert.deepEqual(devices(target), ['cam-1', 'cam-2']);
  });

  it('an altered backup is refused even with a recomputed checksum; a corrupted one by its checksum', () => {
    const data = agentFolder();
    const file = join(work, 'to-alter.kebak');
    ok(['backup', '--data', data, '--out', file]);
    const bytes = readFileSync(file);
    const at = bytes.indexOf(Buffer.from('"cam-2"'));
    const altered = Buffer.from(bytes);
    altered[at + 4] = '3'.charCodeAt(0); // cam-2 → cam-3 in the record's JSON
    altered.set(createHash('sha256').update(altered.subarray(0, altered.length - 32)).digest(), altered.length - 32);
    const forged = join(work, 'forged.kebak');
    writeFileSync(forged, altered);
    refused(['restore', '--data', fresh('restore'), '--from', forged, '--master-key', join(data, 'master.key')], /does not authenticate under its master key: it was altered/);
    const corrupt = join(work, 'corrupt.kebak');
    writeFileSync(corrupt, bytes.subarray(0, bytes.length - 1));
    refused(['restore', '--data', fresh('restore'), '--from', corrupt, '--master-key', join(data, 'master.key')], /checksum does not match \(truncated or corrupted\)/);
  });

  it('a store with records is replaced only with --replace, and kept aside', () => {
    const data = agentFolder();
    const file = join(work, 'replace.kebak');
    ok(['backup', '--data', data, '--out', file]);
    assert.equal(runCli(['device', 'add', '--data', data, '--id', 'cam-3']).status, 0);
    refused(['restore', '--data', data, '--from', file], /store holds 3 records; add --replace to set it aside/);
    assert.deepEqual(devices(data), ['cam-1', 'cam-2', 'cam-3']);
    const restored = ok(['restore', '--data', data, '--from', file, '--replace']);
    assert.deepEqual(devices(data), ['cam-1', 'cam-2']);
    const aside = readdirSync(data).filter((name) => name.startsWith('store.replaced-'));
    assert.equal(aside.length, 1);
    assert.equal(restored.replaced, join(data, aside[0]!));
  });

  it('rotate re-seals and the devices keep their keys; a backup from before needs the old key', () => {
    const data = agentFolder();
    const before = join(work, 'before-rotation.kebak');
    ok(['backup', '--data', data, '--out', before]);
    const oldKey = join(work, 'old-master.key');
    copyFileSync(join(data, 'master.key'), oldKey);
    const rotated = ok(['master-key', 'rotate', '--data', data]);
    assert.deepEqual([rotated.rotated, rotated.records, rotated.resealed, rotated.resumed], [true, 2, 2, false]);
    assert.ok(!readFileSync(join(data, 'master.key')).equals(readFileSync(oldKey)));
    assert.deepEqual(devices(data), ['cam-1', 'cam-2']);
    refused(['restore', '--data', fresh('restore'), '--from', before, '--master-key', join(data, 'master.key')], /the backup was made under/);
    assert.equal(runCli(['restore', '--data', fresh('restore'), '--from', before, '--master-key', oldKey]).status, 0);
  });

  it('operator mistakes: one line, exit 2', () => {
    const data = agentFolder();
    refused(['backup', '--out', join(work, 'x.kebak')], /backup needs --data DIR and --out FILE_OR_DIR/);
    refused(['backup', '--data', fresh('none'), '--out', join(work, 'x.kebak')], /no agent store in/);
    refused(['backup', '--data', data, '--out', join(work, 'x.tar')], /a backup file's name ends in \.kebak/);
    refused(['backup', '--data', data, '--out', join(work, 'missing', 'x.kebak')], /no folder .*missing for the backup/);
    const file = join(work, 'exists.kebak');
    writeFileSync(file, 'x');
    refused(['backup', '--data', data, '--out', file], /exists; give a new file name or a folder/);
    refused(['restore', '--data', fresh('restore'), '--from', join(work, 'nope.kebak')], /no backup file/);
    refused(['restore', '--data', fresh('restore'), '--from', file], /not a usable kmip-edge backup: no kmip-edge backup header/);
    refused(['master-key', '--data', data], /usage: kmip-edge master-key rotate --data DIR/);
    refused(['master-key', 'rotate'], /master-key rotate needs --data DIR/);
    refused(['master-key', 'rotate', '--data', fresh('none')], /no agent store and master key in/);
    process.env.KMIP_EDGE_MASTER_KEY = 'ab'.repeat(32);
    try {
      refused(['master-key', 'rotate', '--data', data], /the master key comes from KMIP_EDGE_MASTER_KEY, not a file/);
    } finally {
      delete process.env.KMIP_EDGE_MASTER_KEY;
    }
    // A rotation left pending: backups and device commands say how to finish it.
    writeFileSync(join(data, 'master.key.next'), readFileSync(join(data, 'master.key')), { mode: 0o600 });
    refused(['backup', '--data', data, '--out', join(work, 'pending.kebak')], /a master-key rotation of .* is unfinished; run kmip-edge master-key rotate --data/);
    refused(['device', 'add', '--data', data, '--id', 'cam-9'], /a master-key rotation of .*master.key was interrupted; finish it with kmip-edge master-key rotate --data .*agent\d+ before starting the agent/);
    assert.equal(ok(['master-key', 'rotate', '--data', data]).resumed, true);
    assert.ok(!existsSync(join(data, 'master.key.next')));
    assert.deepEqual(devices(data), ['cam-1', 'cam-2']);
  });

  for (const [command, flags] of [['backup', ['data', 'out', 'include-master-key']], ['restore', ['data', 'from', 'master-key', 'replace']], ['master-key', ['data']]] as const) {
    it(`${command} --help names its flags and runs nothing`, () => {
      const help = runCli([command, '--help']);
      assert.equal(help.status, 0);
      assert.match(help.stdout, new RegExp(`^usage: kmip-edge ${command}`));
      for (const flag of flags) assert.ok(help.stdout.includes(`--${flag}`), `--${flag}`);
    });
  }
});
