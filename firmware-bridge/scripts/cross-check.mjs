#!/usr/bin/env node
// Cross-checks the C implementation (fbtool) against the shared vectors and against the
// TypeScript implementation (src/devices/frame.ts, slip.ts) of the same repository:
//   node --import tsx firmware-bridge/scripts/cross-check.mjs firmware-bridge/build/fbtool
// (run from the repository root; ctest does). Exit 0 when every check passed, 1 otherwise.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const fbtool = resolve(process.argv[2] ?? join(here, '..', 'build', 'fbtool'));
const repo = join(here, '..', '..');
const { key, frames } = JSON.parse(readFileSync(join(here, '..', 'vectors', 'frames.json'), 'utf8'));
const { sealFrame, openFrame } = await import(pathToFileURL(join(repo, 'src', 'devices', 'frame.ts')).href);
const { slipEncode, SlipDecoder } = await import(pathToFileURL(join(repo, 'src', 'devices', 'slip.ts')).href);

let failures = 0;
let checks = 0;
function check(ok, what) {
  checks++;
  if (!ok) {
    failures++;
    process.stderr.write(`FAIL: ${what}\n`);
  }
}
const tool = (...args) => execFileSync(fbtool, args, { encoding: 'utf8' }).trim();
const suiteName = (s) => (s === 1 ? 'aes-256-gcm' : 'chacha20-poly1305');

// 1. The vectors through fbtool.
for (const f of frames) {
  const sealArgs = ['seal', '--key', key, '--suite', suiteName(f.suite), '--direction', f.direction, '--device-id', f.deviceId, '--counter', f.counter, '--body', f.body];
  if (f.replyTo !== undefined) sealArgs.push('--reply-to', f.replyTo);
  check(tool(...sealArgs) === f.frame, `fbtool seal of "${f.name}" equals the vector`);
  const opened = JSON.parse(tool('open', '--key', key, '--suite', suiteName(f.suite), '--direction', f.direction, '--hex', f.frame));
  check(opened.body === f.body && opened.counter === f.counter && opened.deviceId === f.deviceId && opened.replyTo === (f.replyTo ?? null), `fbtool open of "${f.name}"`);
  check(tool('slip', 'encode', '--hex', f.frame) === f.slip, `fbtool slip encode of "${f.name}"`);
  check(JSON.parse(tool('slip', 'decode', '--hex', `77${f.slip}${f.slip}`).split('\n')[1]).frame === f.frame, `fbtool slip decode of "${f.name}" after noise`);
  const tampered = f.frame.slice(0, -2) + ((parseInt(f.frame.slice(-2), 16) ^ 1).toString(16).padStart(2, '0'));
  const refused = spawnSync(fbtool, ['open', '--key', key, '--suite', suiteName(f.suite), '--direction', f.direction, '--hex', tampered]);
  check(refused.status === 1, `fbtool open of a tampered "${f.name}" exits 1`);
}

// Bad usage exits 2, with one line naming the problem (CLI.md).
for (const bad of [['seal', '--key', 'zz'], ['open'], ['slip', 'sideways'], ['frobnicate'], ['seal', '--suite', 'aes-256-gcm', '--direction', 'up', '--device-id', 'bad id', '--counter', '1', '--body', '00'.repeat(8), '--key', key]]) {
  const r = spawnSync(fbtool, bad, { encoding: 'utf8' });
  check(r.status === 2 && r.stderr.startsWith('fbtool: ') && r.stdout === '', `fbtool ${bad.join(' ')} exits 2 with a message`);
}

// 2. Random frames both ways: sealed in C, opened in TypeScript, and the reverse.
const idChars = 'ABCXYZabcxyz0189._-';
for (let i = 0; i < 40; i++) {
  const suite = i % 2 === 0 ? 1 : 2;
  const direction = i % 4 < 2 ? 'up' : 'down';
  const k = randomBytes(32);
  const deviceId = Array.from({ length: randomInt(1, 65) }, () => idChars[randomInt(idChars.length)]).join('');
  const counter = BigInt(`0x${randomBytes(8).toString('hex')}`) || 1n;
  const replyTo = i % 3 === 0 ? BigInt(randomInt(1, 2 ** 40)) : undefined;
  const body = randomBytes(randomInt(8, 600));
  const args = ['seal', '--key', k.toString('hex'), '--suite', suiteName(suite), '--direction', direction, '--device-id', deviceId, '--counter', counter.toString(), '--body', body.toString('hex')];
  if (replyTo !== undefined) args.push('--reply-to', replyTo.toString());
  const cFrame = Buffer.from(tool(...args), 'hex');
  const tsFrame = Buffer.from(sealFrame({ suite, direction, deviceId, counter, replyTo }, k, body));
  check(cFrame.equals(tsFrame), `random frame ${i}: C and TypeScript seal the same bytes`);
  const opened = openFrame(new Uint8Array(cFrame), k);
  check(Buffer.from(opened.body).equals(body) && opened.header.counter === counter && opened.header.replyTo === replyTo, `random frame ${i}: TypeScript opens the C frame`);
  const back = JSON.parse(tool('open', '--key', k.toString('hex'), '--suite', suiteName(suite), '--direction', direction, '--hex', tsFrame.toString('hex')));
  check(back.body === body.toString('hex') && back.counter === counter.toString(), `random frame ${i}: C opens the TypeScript frame`);
  const cSlip = tool('slip', 'encode', '--hex', cFrame.toString('hex'));
  check(cSlip === Buffer.from(slipEncode(tsFrame)).toString('hex'), `random frame ${i}: the same SLIP packet`);
  const decoded = new SlipDecoder().push(Buffer.from(cSlip, 'hex'));
  check(decoded.length === 1 && Buffer.from(decoded[0]).equals(cFrame), `random frame ${i}: TypeScript decodes the C packet`);
}

process.stdout.write(`${checks - failures}/${checks} cross-checks passed\n`);
process.exit(failures === 0 ? 0 : 1);
