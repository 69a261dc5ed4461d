/**
 * Log output for whoever reads it: JSON lines when stderr is a pipe or a file (journald, log
 * shippers, tests), pretty-printed when a person watches a terminal — checked in process, and with
 * the built bundle under a real pseudo-terminal (`script`), where pino's worker-thread transports
 * would break (TOOLCHAIN.md): pino-pretty runs as an in-process stream.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { freePort } from '../../src/bench/free-port.ts';
import { createLogger, logDestination } from '../../src/log.ts';
import { TestCa } from '../helpers/certificates.ts';
import { ROOT } from '../helpers/cli.ts';

async function logTo(terminal: boolean): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'kmip-edge-log-')), 'log');
  const fd = openSync(file, 'w');
  const log = createLogger({}, await logDestination(fd, terminal));
  log.info({ event: 'upstream_offline', reason: 'connect ECONNREFUSED', key: 'deadbeef' }, 'upstream offline');
  log.flush();
  closeSync(fd);
  return readFileSync(file, 'utf8');
}

it('JSON lines when not a terminal; pretty (level, message, fields) on one; redaction in both', async () => {
  const json = JSON.parse(await logTo(false)) as Record<string, unknown>;
  assert.deepEqual([json.level, json.event, json.msg, json.key], [30, 'upstream_offline', 'upstream offline', '[redacted]']);
  const pretty = await logTo(true);
  assert.throws(() => JSON.parse(pretty));
  assert.match(pretty, /INFO.*: .*upstream offline/);
  assert.match(pretty, /event.*: "upstream_offline"/);
  assert.match(pretty, /key.*: "\[redacted\]"/);
  assert.doesNotMatch(pretty, /deadbeef/);
});

it('the built agent on a real terminal (script): pretty lines, the ready line still JSON on stdout', async () => {
  const ca = new TestCa('log-test');
  const client = ca.issue('agent', 'client');
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-tty-'));
  writeFileSync(join(dir, 'ca.pem'), ca.cert);
  writeFileSync(join(dir, 'client.pem'), client.cert);
  writeFileSync(join(dir, 'client.key'), client.key);
  const unused = await freePort(); // nothing listens: the upstream is unreachable, which the agent allows
  const command = [process.execPath, join(ROOT, 'dist/kmip-edge.mjs'), 'run', '--data', join(dir, 'agent'), '--upstream', `127.0.0.1:${unused}`,
    '--upstream-ca', join(dir, 'ca.pem'), '--upstream-cert', join(dir, 'client.pem'), '--upstream-key', join(dir, 'client.key'), '--embedded-broker', `127.0.0.1:${await freePort()}`]
    .map((word) => `'${word}'`).join(' ');
  const script = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let output = '';
  const seen = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no pretty 'agent serving' line within 60 s: ${output}`)), 60_000);
    script.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (/INFO.*agent serving/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    });
    script.once('exit', (code) => reject(new Error(`script exited ${code}: ${output}`)));
  });
  try {
    await seen;
  } finally {
    script.kill('SIGTERM'); // script ends the session: the agent gets SIGHUP/SIGTERM
    await new Promise((resolve) => (script.exitCode !== null ? resolve(undefined) : script.once('exit', resolve)));
  }
  const lines = output.split(/\r?\n/).filter(Boolean);
  assert.ok(lines.some((l) => /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: agent core open$/.test(l)), output);
  assert.ok(lines.some((l) => l.startsWith('{"ready":true')), 'the ready line is JSON');
  assert.ok(!lines.some((l) => l.startsWith('{"level"')), 'no JSON log lines on a terminal');
});
