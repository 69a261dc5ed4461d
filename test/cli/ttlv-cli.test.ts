/** `kmip-edge ttlv decode|encode`, the demo and the benchmarks from the shell, as CLI.md specifies. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FACTS_EXAMPLES } from '../fixtures/facts-vectors.ts';
import { ROOT, runCli } from '../helpers/cli.ts';

const E3 = FACTS_EXAMPLES.E3!;
const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-cli-'));

describe('kmip-edge ttlv', () => {
  it('decode --hex prints KMIP XML by default; encode reads it back to the same hex', () => {
    const decoded = runCli(['ttlv', 'decode', '--hex', E3]);
    assert.equal(decoded.status, 0, decoded.stderr);
    assert.match(decoded.stdout, /^<ResponseMessage>/);
    writeFileSync(join(dir, 'e3.xml'), decoded.stdout);
    const encoded = runCli(['ttlv', 'encode', '--format', 'xml', '--file', join(dir, 'e3.xml')]);
    assert.equal(encoded.status, 0, encoded.stderr);
    assert.equal(encoded.stdout, E3 + '\n');
  });

  it('JSON round trip through standard input', () => {
    const json = runCli(['ttlv', 'decode', '--format', 'json', '-'], E3);
    assert.equal(json.status, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).tag, 'ResponseMessage');
    const encoded = runCli(['ttlv', 'encode', '--format', 'json', '-'], json.stdout);
    assert.equal(encoded.stdout, E3 + '\n');
  });

  it('decode --file takes raw bytes or hex text; --format text prints a readable tree', () => {
    writeFileSync(join(dir, 'e3.bin'), Buffer.from(E3, 'hex'));
    const text = runCli(['ttlv', 'decode', '--format', 'text', '--file', join(dir, 'e3.bin')]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^ResponseMessage\n  ResponseHeader\n/);
    assert.match(text.stdout, /CryptographicAlgorithm \(Enumeration\) = DES3/);
    const fromHexFile = runCli(['ttlv', 'decode', '--format', 'text', '--file', join(ROOT, 'bench/inputs/get-response-aes256.hex')]);
    assert.match(fromHexFile.stdout, /CryptographicLength \(Integer\) = 256/);
  });

  it('malformed input exits 2 with a one-line reason and no stack trace', () => {
    writeFileSync(join(dir, 'bad.xml'), '<RequestMessage><BatchCount type="Integer" value="x"/></RequestMessage>');
    const cases: [string[], string | undefined, RegExp][] = [
      [['ttlv', 'decode', '--hex', E3.slice(0, -16)], undefined, /^kmip-edge: TTLV_TRUNCATED: /],
      [['ttlv', 'decode', '--hex', 'zz'], undefined, /^kmip-edge: not a hex digit/],
      [['ttlv', 'decode', '--hex', E3 + '0'], undefined, /^kmip-edge: hex has an odd number of digits/],
      [['ttlv', 'decode', '--hex', E3 + '00'], undefined, /^kmip-edge: TTLV_TRAILING_BYTES: 1 bytes after the top-level item \(at byte 304\)/],
      [['ttlv', 'decode', '-'], '42000102000000040000000100000001', /^kmip-edge: TTLV_BAD_PADDING: /],
      [['ttlv', 'encode', '--format', 'xml', '--file', join(dir, 'bad.xml')], undefined, /^kmip-edge: <BatchCount>: "x" is not an integer/],
      [['ttlv', 'encode', '--format', 'json', '-'], '{"tag":', /^kmip-edge: JSON is not well-formed/],
      [['ttlv', 'encode', '--format', 'xml', '--file', join(dir, 'missing.xml')], undefined, /^kmip-edge: cannot open .*ENOENT/],
      [['ttlv', 'decode'], undefined, /^kmip-edge: give exactly one input/],
      [['ttlv', 'decode', '--hex', E3, '--format', 'yaml'], undefined, /^kmip-edge: --format must be xml, json or text/],
      [['ttlv', 'decode', '--bogus'], undefined, /^kmip-edge: Unknown option '--bogus'/],
      [['ttlv', 'frobnicate'], undefined, /^kmip-edge: ttlv needs decode or encode/],
      [['frobnicate'], undefined, /^kmip-edge: unknown command "frobnicate"/],
    ];
    for (const [args, input, reason] of cases) {
      const run = runCli(args, input);
      assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, reason, args.join(' '));
      assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(run.stdout, '');
    }
  });

  it('demo runs the embedded default end to end (every stage: test/cli/demo-events.test.ts)', () => {
    const run = runCli(['demo']);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /tape-drive-7 Get tape-key: served, fingerprint [0-9a-f]{16} = the key server's/);
    assert.match(run.stdout, /tape-drive-7 encrypted 6144 bytes in 6 chunks; the ledger shows 6144 bytes granted/);
    assert.match(run.stdout, /HMAC and its own x-Nonce verified at the device/);
    assert.match(run.stdout, /sensor-1 Get tape-key \(not on its allow-list\): refused/);
    assert.match(run.stdout, /acknowledged by the agent \(on disk first\); relayed to tape-drive-7: received and acknowledged/);
    assert.match(run.stdout, /tape-drive-7 Get tape-key with the key server away: served from the cache/);
    assert.match(run.stdout, /refills resumed: the ledger draws from the key server again; upstream shown online/);
    assert.match(run.stdout, /demo complete: keys, encrypt, put-replace, notify, offline, online\n$/);
  });

  it('bench devices --json: agent and echo through a real Mosquitto, alternated rounds, the placement it ran with; bad --rounds / --placement are usage errors', () => {
    const run = runCli(['bench', 'devices', '--json', '--devices', '2', '--seconds', '0.3', '--rounds', '2']);
    assert.equal(run.status, 0, run.stderr);
    const [line] = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(line!.devices, 2);
    assert.equal(line!.placement, availableParallelism() >= 2 ? 'split' : 'shared'); // taskset is in util-linux, on every Debian
    assert.equal((line!.rounds as unknown[]).length, 2);
    for (const field of ['requestsPerSec', 'p50Ms', 'p99Ms', 'echoRequestsPerSec', 'echoP50Ms', 'echoP99Ms', 'agentCpuUsPerRequest', 'loadCpuUsPerRequest']) assert.ok((line![field] as number) > 0, field);
    assert.equal(runCli(['bench', 'devices', '--rounds', '0']).status, 2);
    assert.equal(runCli(['bench', 'devices', '--placement', 'elsewhere']).status, 2);
  });

  it('bench ttlv --json prints one measurement per default input, with the CLI.md fields', () => {
    const run = runCli(['bench', 'ttlv', '--json', '--seconds', '0.05']);
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => [l.input, l.bytes]), [['get-response-aes256.hex', 312], ['create-request-aes256.hex', 376]]);
    for (const line of lines) assert.ok((line.decodePerSec as number) > 0 && (line.encodePerSec as number) > 0);
    assert.equal(readFileSync(join(ROOT, 'bench/inputs/get-response-aes256.hex'), 'utf8').trim().length, 624);
  });
});
