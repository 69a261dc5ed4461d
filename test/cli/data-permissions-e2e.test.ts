/**
 * Owner-only data folder (issue #13.8), from the shell: a data folder created beforehand 0755
 * holding a store whose files are 0644 (made under the usual umask 022, as an earlier version
 * left it). `kmip-edge device add` and then `kmip-edge run` leave every folder 0700 and every file
 * — store files, master key, the admin socket — with no group or other access.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { ClassicLevel } from 'classic-level';
import { addDevice, createActiveKey, startKeyServer, startProcess, terminate, upstreamArgs } from '../helpers/processes.ts';
import { freePort } from '../../src/bench/free-port.ts';

/** Every path under `root` whose mode gives group or others any access, with its mode. */
function lax(root: string): string[] {
  const out: string[] = [];
  const walk = (path: string) => {
    const mode = statSync(path).mode;
    if ((mode & 0o077) !== 0) out.push(`${path} ${(mode & 0o777).toString(8)}`);
    if (statSync(path).isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  walk(root);
  return out;
}

it('a 0755 data folder with 0644 store files: device add and run make all of it owner-only', async () => {
  const { kms, data, port, server } = await startKeyServer('permissions');
  let agent: ChildProcess | undefined;
  try {
    mkdirSync(data, { mode: 0o755 });
    chmodSync(data, 0o755);
    const umask = process.umask(0o022);
    try {
      const db = new ClassicLevel(join(data, 'store'));
      await db.open();
      await db.put('left', 'by an earlier run');
      await db.close();
    } finally {
      process.umask(umask);
    }
    chmodSync(join(data, 'store'), 0o755);
    assert.ok(lax(data).length >= 3, `the folder starts lax: ${lax(data)}`);

    const uid = await createActiveKey(kms, port, 'perm-key');
    addDevice(data, 'perm-dev', uid);
    assert.deepEqual(lax(data), [], 'after device add');

    agent = (await startProcess(['run', '--data', data, ...upstreamArgs(kms, port), '--embedded-broker', `127.0.0.1:${await freePort()}`])).child;
    assert.deepEqual(lax(data), [], 'while the agent runs (its admin socket included)');
    assert.equal(await terminate(agent), 0);
    agent = undefined;
    assert.deepEqual(lax(data), [], 'after it stopped');
  } finally {
    agent?.kill('SIGKILL');
    server.kill('SIGTERM');
  }
});
