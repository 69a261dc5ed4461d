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

it('redaction: secret fields at the top and one level inside (objects, errors, array elements); what is logged is not changed', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'kmip-edge-log-')), 'log');
  const fd = openSync(file, 'w');
  const log = createLogger({}, await logDestination(fd, false));
  const error = Object.assign(new Error('boom'), { key: 'error-key' });
  const fields = { secret: 'top-secret', device: { id: 'd1', key: 'device-key' }, err: error, items: [{ uid: 'u1', material: 'item-material' }], deeper: { a: { key: 'two-levels-down' } } };
  log.info(fields, 'fields');
  log.flush();
  closeSync(fd);
  const text = readFileSync(file, 'utf8');
  const line = JSON.parse(text) as Record<string, any>;
  assert.equal(line.secret, '[redacted]');
  assert.deepEqual(line.device, { id: 'd1', key: '[redacted]' });
  assert.equal(line.err.message, 'boom', 'the error is still serialized as an error');
  assert.equal(line.err.type, 'Error');
  assert.equal(line.err.key, '[redacted]');
  assert.deepEqual(line.items, [{ uid: 'u1', material: '[redacted]' }]);
  for (const secret of ['top-secret', 'device-key', 'error-key', 'item-material']) assert.ok(!text.includes(secret), secret);
  // Two levels down is beyond the rule (as pino's `*.key` paths were): named so that the test says so.
  assert.equal(line.deeper.a.key, 'two-levels-down');
  assert.equal(fields.device.key, 'device-key', 'the caller\'s object is untouched');
  assert.equal(error.key, 'error-key');
});

it('gathered JSON lines: a burst beyond the buffer, a line longer than it and lines of multi-byte characters come out whole and in order', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'kmip-edge-log-')), 'log');
  const fd = openSync(file, 'w');
  const log = createLogger({}, await logDestination(fd, false));
  const expected: string[] = [];
  // 64 KiB gathered at most: 3,000 lines of ~150 bytes are several buffers' worth.
  for (let i = 0; i < 3000; i++) {
    const detail = i % 2 === 0 ? `${'€'.repeat(40)}😀 ${i}` : `line ${i}`; // 3 and 4 bytes a character
    expected.push(detail);
    log.info({ event: 'burst', detail }, 'burst');
    if (i === 1500) {
      const long = 'x'.repeat(200_000) + '€'; // longer than the buffer: written on its own, after what was gathered before it
      expected.push(long);
      log.info({ event: 'burst', detail: long }, 'burst');
    }
  }
  log.flush();
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { detail: string }).detail);
  closeSync(fd);
  assert.equal(lines.length, expected.length);
  assert.deepEqual(lines, expected);
});

it('JSON lines are gathered and written together shortly after, all of them at exit, and a reader that is gone ends nothing', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'kmip-edge-log-')), 'log');
  const fd = openSync(file, 'w');
  const log = createLogger({}, await logDestination(fd, false));
  log.info({ event: 'one' }, 'one');
  log.info({ event: 'two' }, 'two');
  assert.equal(readFileSync(file, 'utf8'), '', 'gathered, not written line by line');
  for (let waited = 0; readFileSync(file, 'utf8') === '' && waited < 5000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(readFileSync(file, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event), ['one', 'two']);
  closeSync(fd);

  // A process that logs and exits in the same turn still writes the line; one whose stderr reader
  // has gone (EPIPE) goes on and exits 0.
  const program = `import { createLogger, logDestination } from ${JSON.stringify(join(ROOT, 'src/log.ts'))};
    const log = createLogger({}, await logDestination(2, false));
    if (process.argv[1] === 'gone') await new Promise((resolve) => setTimeout(resolve, 300));
    for (let i = 0; i < 3; i++) log.info({ event: 'last-' + i }, 'logged');
    process.exit(0);`;
  const run = (mode: string, closeReader: boolean) => new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program, mode], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    if (closeReader) child.stderr!.destroy();
    child.once('exit', (code) => resolve({ code, stderr }));
  });
  const exited = await run('exit', false);
  assert.equal(exited.code, 0);
  assert.deepEqual(exited.stderr.trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event), ['last-0', 'last-1', 'last-2']);
  assert.equal((await run('gone', true)).code, 0);
});
