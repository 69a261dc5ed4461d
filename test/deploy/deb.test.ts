/**
 * The Debian package on this machine (issue #15, Build; we are root here and in CI): built with
 * scripts/package-deb.mjs, installed with `dpkg -i`, then checked as an operator would —
 * `kmip-edge --version` from /usr/bin, the agent's store opened as the kmip-edge user (the native
 * module from /usr/lib/kmip-edge, the master key postinst made), the unit through
 * `systemd-analyze verify` and `systemd-analyze security --offline=true` (exposure ≤ 2.5, printed),
 * every path the unit names present; `dpkg -r` keeps the state folder and a reinstall keeps its
 * master key, `dpkg -P` removes it. Purged afterwards even when a check fails. systemd does not run
 * services here, so the unit is not started.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { ROOT } from '../helpers/cli.ts';

const UNIT = '/lib/systemd/system/kmip-edge.service';
const STATE = '/var/lib/kmip-edge';
const EXPOSURE_LIMIT = 2.5;

function run(command: string, args: string[], options: { cwd?: string } = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 120_000, cwd: options.cwd ?? '/' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function must(command: string, args: string[]): string {
  const result = run(command, args);
  assert.equal(result.status, 0, `${command} ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return result.stdout;
}

function purge(): void {
  run('dpkg', ['--purge', 'kmip-edge']);
}

let deb = '';
const asAgent = (...args: string[]) => run('runuser', ['-u', 'kmip-edge', '--', '/usr/bin/kmip-edge', ...args]);
const scratch = mkdtempSync(join(tmpdir(), 'kmip-edge-deb-test-'));

before(() => {
  assert.equal(process.getuid?.(), 0, 'dpkg -i needs root (this machine and CI run the tests as root)');
  const installed = run('dpkg-query', ['-W', '-f', '${Status}', 'kmip-edge']);
  assert.ok(installed.status !== 0 || !installed.stdout.includes('installed'), 'kmip-edge is already installed on this machine: dpkg -P kmip-edge first (this test purges it afterwards)');
  // The bundle npm test built (not rebuilt here: other test files run it meanwhile).
  assert.ok(existsSync(join(ROOT, 'dist/kmip-edge.mjs')), 'dist/kmip-edge.mjs is missing: run node scripts/build.mjs (npm test does)');
  deb = (JSON.parse(must(process.execPath, [join(ROOT, 'scripts/package-deb.mjs'), '--out', scratch])) as { deb: string }).deb;
});

after(() => {
  purge();
  rmSync(scratch, { recursive: true, force: true });
});

it('dpkg -i: /usr/bin/kmip-edge, the store opened as the kmip-edge user, the unit verified and rated ≤ 2.5, every path it names present', () => {
  must('dpkg', ['-i', deb]);
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(must('/usr/bin/kmip-edge', ['--version']), `${version.version}\n`);

  // The system user, the owner-only state folder and the master key postinst made.
  const uid = Number(must('id', ['-u', 'kmip-edge']));
  const state = statSync(STATE);
  assert.deepEqual([state.uid, state.mode & 0o777], [uid, 0o700], 'state folder kmip-edge 0700');
  const masterKey = statSync(join(STATE, 'master.key'));
  assert.deepEqual([masterKey.uid, masterKey.mode & 0o777, masterKey.size], [uid, 0o600, 32], 'master key kmip-edge 0600, 32 bytes');
  const config = statSync('/etc/kmip-edge/config.yaml');
  assert.equal(config.mode & 0o007, 0, 'the configuration is not world-readable');
  assert.match(must('dpkg-query', ['--showformat=${Conffiles}', '--show', 'kmip-edge']), /\/etc\/kmip-edge\/config\.yaml [0-9a-f]{32}/, 'config.yaml is a conffile');

  // As the service would run: the kmip-edge user opens the store (classic-level from
  // /usr/lib/kmip-edge) under the master key, and reads the shipped configuration.
  const added = asAgent('device', 'add', '--data', STATE, '--id', 'probe-1', '--key-uid', 'some-key');
  assert.equal(added.status, 0, added.stderr);
  const list = asAgent('device', 'list', '--data', STATE);
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /"probe-1"/, 'the device provisioned as the kmip-edge user is listed');
  assert.equal(statSync(join(STATE, 'store')).uid, uid, 'the store belongs to kmip-edge');
  // The shipped configuration is valid as it stands (the operator fills in the key server and certificates).
  const check = asAgent('config', 'check', '/etc/kmip-edge/config.yaml');
  assert.equal(check.status, 0, check.stderr);
  assert.equal((JSON.parse(check.stdout) as { data: string }).data, STATE, 'the shipped configuration uses the state folder');

  const verify = run('systemd-analyze', ['verify', UNIT]);
  assert.equal(verify.status, 0, verify.stderr);
  assert.equal(verify.stderr.trim(), '', 'systemd-analyze verify: no warnings');
  const security = run('systemd-analyze', ['security', '--offline=true', '--no-pager', UNIT]);
  const exposure = /Overall exposure level for kmip-edge\.service: (\d+\.\d+) (\S+)/.exec(security.stdout);
  assert.ok(exposure, `no exposure figure in: ${security.stdout.slice(-400)} ${security.stderr}`);
  process.stdout.write(`# systemd-analyze security --offline=true: exposure ${exposure[1]} ${exposure[2]} (limit ${EXPOSURE_LIMIT})\n`);
  assert.ok(Number(exposure[1]) <= EXPOSURE_LIMIT, `exposure ${exposure[1]} > ${EXPOSURE_LIMIT}`);

  // Every path the unit names exists after install.
  const unit = readFileSync(UNIT, 'utf8');
  const setting = (name: string) => [...unit.matchAll(new RegExp(`^${name}=(.*)$`, 'gm'))].map((match) => match[1]!.trim());
  for (const hardening of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'CapabilityBoundingSet=', 'SystemCallFilter=@system-service', 'Restart=on-failure', 'StateDirectory=kmip-edge', 'User=kmip-edge']) assert.match(unit, new RegExp(`^${hardening}$`, 'm'), hardening);
  assert.deepEqual(setting('RestrictAddressFamilies'), ['AF_INET AF_INET6 AF_UNIX']);
  assert.deepEqual(setting('ExecReload'), ['/bin/kill -HUP $MAINPID']);
  const paths = [
    ...['ExecStart', 'ExecReload', 'ExecStartPost'].flatMap(setting).flatMap((line) => line.split(/\s+/).filter((word) => word.startsWith('/'))),
    ...setting('StateDirectory').map((name) => `/var/lib/${name}`),
    ...setting('WorkingDirectory'),
    ...setting('Documentation').flatMap((line) => line.split(/\s+/)).filter((url) => url.startsWith('file://')).map((url) => url.slice('file://'.length)),
  ];
  assert.ok(paths.includes('/usr/bin/kmip-edge') && paths.includes('/etc/kmip-edge/config.yaml') && paths.includes(STATE), `paths found: ${paths.join(' ')}`);
  for (const path of paths) assert.ok(existsSync(path), `${path}, named by the unit, exists`);
  for (const user of setting('User')) assert.equal(run('getent', ['passwd', user]).status, 0, `user ${user} exists`);
  for (const group of ['Group', 'SupplementaryGroups'].flatMap(setting).flatMap((line) => line.split(/\s+/))) assert.equal(run('getent', ['group', group]).status, 0, `group ${group} exists`);
});

it('an upgrade keeps the edited conffile and the master key; dpkg -r keeps the state folder and a reinstall its master key; dpkg -P removes it', () => {
  if (!existsSync('/usr/bin/kmip-edge')) must('dpkg', ['-i', deb]);
  if (!existsSync(join(STATE, 'store'))) assert.equal(asAgent('device', 'add', '--data', STATE, '--id', 'probe-2', '--key-uid', 'some-key').status, 0);
  const key = readFileSync(join(STATE, 'master.key'));
  // An upgrade (dpkg -i over the installed package) keeps the operator's edit and the master key.
  appendFileSync('/etc/kmip-edge/config.yaml', '# edited by the operator\n');
  must('dpkg', ['-i', deb]);
  assert.match(readFileSync('/etc/kmip-edge/config.yaml', 'utf8'), /# edited by the operator\n$/, 'an upgrade keeps the edited conffile');
  assert.deepEqual(readFileSync(join(STATE, 'master.key')), key, 'an upgrade keeps the master key');

  must('dpkg', ['-r', 'kmip-edge']);
  assert.ok(!existsSync('/usr/bin/kmip-edge'), 'the program is gone');
  assert.ok(existsSync(join(STATE, 'master.key')), 'dpkg -r keeps the state folder');
  assert.ok(existsSync(join(STATE, 'store')), 'dpkg -r keeps the store');
  assert.ok(existsSync('/etc/kmip-edge/config.yaml'), 'dpkg -r keeps the conffile');

  must('dpkg', ['-i', deb]);
  assert.deepEqual(readFileSync(join(STATE, 'master.key')), key, 'a reinstall keeps the master key');

  must('dpkg', ['-P', 'kmip-edge']);
  assert.ok(!existsSync(STATE), 'dpkg -P removes the state folder');
  assert.ok(!existsSync('/etc/kmip-edge/config.yaml'), 'dpkg -P removes the conffile');
  assert.ok(!existsSync('/etc/systemd/system/multi-user.target.wants/kmip-edge.service'), 'no enablement left behind');
  assert.notEqual(run('dpkg-query', ['-W', 'kmip-edge']).stdout.trim(), 'kmip-edge\t0.1.0-1', 'not installed');
});
