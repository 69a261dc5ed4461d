/**
 * `kmip-edge <command> --help` and `--version` from the built CLI (CLI.md wave 2): exit 0, the
 * help on stdout listing every flag of the command, and the command never runs (`demo --help`
 * used to run the demo; `run --help` was "Unknown option"). Flags of the commands that keep
 * their parser options in a table are checked against that table, so a new flag without help
 * fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RUN_FLAGS } from '../../src/config/flags.ts';
import { DEV_SERVER_OPTIONS } from '../../src/cli/dev-server-command.ts';
import { DEVICE_OPTIONS } from '../../src/cli/device-command.ts';
import { CLIENT_OPTIONS } from '../../src/cli/client-command.ts';
import { KMIP_OPTIONS } from '../../src/cli/kmip-command.ts';
import { ROOT, runCli } from '../helpers/cli.ts';

const FLAGS: Record<string, string[]> = {
  run: ['config', ...Object.keys(RUN_FLAGS)],
  config: [],
  device: Object.keys(DEVICE_OPTIONS),
  client: Object.keys(CLIENT_OPTIONS),
  kmip: Object.keys(KMIP_OPTIONS).concat('secret-file'),
  'dev-server': [...Object.keys(DEV_SERVER_OPTIONS), 'put', 'replaces', 'notify', 'list'],
  // parsers owned elsewhere: their flags as of this commit
  'device-sim': ['id', 'key', 'key-file', 'suite', 'mqtt', 'serial', 'prefix', 'state', 'timeout', 'uid', 'count', 'repeat', 'concurrency', 'resend-ms', 'pushes', 'seconds', 'mac-uid', 'mac-key', 'mac-key-file', 'mqtt-username', 'mqtt-password-file', 'mqtt-ca', 'mqtt-cert', 'mqtt-key', 'mqtt-client-id'],
  ttlv: ['hex', 'file', 'format'],
  ledger: ['data', 'json'],
  cache: ['data', 'json'],
  bench: ['json', 'input', 'seconds', 'keys', 'devices', 'rounds', 'placement', 'outage-seconds', 'cut', 'rate', 'resend-ms', 'clients'],
  status: ['data', 'json'],
  backup: ['data', 'out', 'include-master-key'],
  restore: ['data', 'from', 'master-key', 'replace'],
  'master-key': ['data'],
  demo: ['seconds', 'events', 'keep', 'pace', 'plain'],
};

describe('--help on every command', () => {
  for (const [command, flags] of Object.entries(FLAGS)) {
    it(`${command} --help lists its flags and runs nothing`, () => {
      const help = runCli([command, '--help']);
      assert.equal(help.status, 0, help.stderr);
      assert.equal(help.stderr, '');
      assert.match(help.stdout, new RegExp(`^usage:[^]*kmip-edge ${command}`));
      for (const flag of new Set(flags)) assert.ok(help.stdout.includes(`--${flag}`), `${command} --help names --${flag}`);
    });
  }
  it('--help wins over other arguments: nothing starts', () => {
    const run = runCli(['run', '--data', '/proc/never', '--help']);
    assert.equal(run.status, 0);
    assert.match(run.stdout, /^usage: kmip-edge run/);
    const demo = runCli(['demo', '--help']);
    assert.equal(demo.status, 0);
    assert.match(demo.stdout, /^usage: kmip-edge demo /);
    assert.doesNotMatch(demo.stdout + demo.stderr, /gateway agent and two devices|demo complete|^— /m, 'no demo output');
    assert.equal(runCli(['device', 'add', '-h']).status, 0);
  });
  it('kmip-edge --help and help: the overview of commands; no command: the overview on stderr, exit 2', () => {
    const help = runCli(['--help']);
    assert.equal(help.status, 0);
    for (const command of Object.keys(FLAGS)) assert.match(help.stdout, new RegExp(`^  ${command} `, 'm'), command);
    assert.equal(runCli(['help', 'run']).stdout, runCli(['run', '--help']).stdout);
    const none = runCli([]);
    assert.equal(none.status, 2);
    assert.match(none.stderr, /^kmip-edge — KMIP key agent/);
  });
  it('kmip register --help says --secret-file keeps the secret out of ps', () => {
    assert.match(runCli(['kmip', '--help']).stdout, /--secret-file F .*standard input[^]*visible to other users in ps/);
  });
});

it('--version prints the package version', () => {
  const version = runCli(['--version']);
  assert.equal(version.status, 0);
  assert.equal(version.stdout, `${(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version}\n`);
});
