/**
 * The `kmip:` section of the configuration (issue #16) through `kmip-edge config check` of the
 * built CLI: the fields and their flags, relative paths against the file, a site with only local
 * KMIP clients (no device transport) is a valid configuration, and each mistake is one line.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { runCli } from '../helpers/cli.ts';

const work = mkdtempSync(join(tmpdir(), 'kmip-edge-kmip-config-'));
const BASE = `data: ./agent
upstream:
  address: kms.example.com:5696
  ca: pki/ca.pem
  cert: pki/agent.pem
  key: pki/agent.key
`;
const file = (name: string, text: string): string => {
  const path = join(work, name);
  writeFileSync(path, text);
  return path;
};

it('kmip: listen, cert, key, ca (and ciphers): relative paths resolved; no device transport needed; flags override', () => {
  const path = file('kmip.yaml', `${BASE}kmip:\n  listen: 0.0.0.0:5696\n  cert: pki/endpoint.pem\n  key: pki/endpoint.key\n  ca: pki/site-ca.pem\n`);
  const run = runCli(['config', 'check', path, '--kmip-listen', '127.0.0.1:15696', '--kmip-ciphers', 'ECDHE-RSA-AES256-GCM-SHA384']);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual((JSON.parse(run.stdout) as { kmip: unknown }).kmip, {
    listen: '127.0.0.1:15696', cert: join(work, 'pki/endpoint.pem'), key: join(work, 'pki/endpoint.key'), ca: join(work, 'pki/site-ca.pem'), ciphers: 'ECDHE-RSA-AES256-GCM-SHA384',
  });
});

it('kmip: mistakes are one line each, naming the field', () => {
  const path = file('bad-kmip.yaml', `${BASE}kmip:\n  listen: 5696\n  cert: pki/endpoint.pem\n  ca: pki/site-ca.pem\n  clientCa: x\n`);
  const run = runCli(['config', 'check', path]);
  assert.equal(run.status, 2);
  assert.equal(run.stdout, '');
  assert.deepEqual(run.stderr.trimEnd().split('\n'), [
    `kmip-edge: ${path}: kmip.listen: got 5696 (a number); expected HOST:PORT to listen on (port 0-65535, 0 = any free port), e.g. 0.0.0.0:5696`,
    `kmip-edge: ${path}: kmip.key: missing; expected the path of the PEM file of the KMIP endpoint certificate's private key`,
    `kmip-edge: ${path}: kmip.clientCa: unknown field (got "x"); allowed fields: listen, cert, key, ca, ciphers`,
  ]);
});

it('nothing to serve (no device transport, no kmip:) is still refused, naming both ways', () => {
  const run = runCli(['config', 'check', file('nothing.yaml', BASE)]);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /^kmip-edge: .*nothing\.yaml: mqtt\.url: missing; expected a device transport: .*; or the local KMIP endpoint, kmip\.listen \(--kmip-listen\)\n$/);
});
