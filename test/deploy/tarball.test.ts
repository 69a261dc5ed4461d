/**
 * The `npm pack` tarball as an operator meets it (issue #15, Build): packed from this checkout,
 * installed with `npm install -g` into a temporary prefix, and the installed `kmip-edge` run from a
 * folder outside the repository with `run --config` against the development server and a real
 * Mosquitto — a device served through device-sim, /metrics scraped, SIGTERM exits 0. Also: the
 * tarball holds only dist/, deploy/, README.md and package.json (no src/, no tests), and installing
 * it does not need the build scripts it does not ship.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { ROOT } from '../helpers/cli.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { createActiveKey, exited, startKeyServer, terminate } from '../helpers/processes.ts';

const BUNDLE_BUDGET = 1_000_000; // bytes, issue #15

it('npm pack → npm install -g into a temporary prefix → the installed kmip-edge serves a device from a config file, /metrics scraped, SIGTERM exits 0', { timeout: 240_000 }, async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'kmip-edge-tarball-'));
  const broker = await startMosquitto();
  const { work, kms, data, port, server } = await startKeyServer('tarball');
  let agent: ChildProcess | undefined;
  try {
    // The bundle npm test built; --ignore-scripts: `prepare` would rebuild it while other test files run it.
    assert.ok(existsSync(join(ROOT, 'dist/kmip-edge.mjs')), 'dist/kmip-edge.mjs is missing: run node scripts/build.mjs (npm test does)');
    const packed = execFileSync('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', scratch], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 }).trim().split('\n').pop()!;
    const tarball = join(scratch, packed);
    assert.match(packed, /^kmip-edge-\d+\.\d+\.\d+\.tgz$/);
    const entries = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).trim().split('\n');
    const outside = entries.filter((entry) => !/^package\/(dist\/kmip-edge\.(mjs|cjs(\.cache|\.map|\.LEGAL\.txt)?)$|deploy\/|README\.md$|package\.json$)/.test(entry));
    assert.deepEqual(outside, [], 'the tarball ships only the command, the bundle (and its code cache, map and licences), deploy/, README.md and package.json');
    for (const needed of ['package/dist/kmip-edge.mjs', 'package/dist/kmip-edge.cjs', 'package/dist/kmip-edge.cjs.cache', 'package/dist/kmip-edge.cjs.map', 'package/deploy/gateway-embedded-broker.yaml']) assert.ok(entries.includes(needed), `${needed} in the tarball`);
    const bundleBytes = statSync(join(ROOT, 'dist/kmip-edge.cjs')).size;
    process.stdout.write(`# bundle: ${bundleBytes} bytes (budget ${BUNDLE_BUDGET})\n`);
    assert.ok(bundleBytes <= BUNDLE_BUDGET, `bundle ${bundleBytes} bytes > ${BUNDLE_BUDGET}`);

    // Installed as an operator would; the dependencies come from the npm cache or registry.
    const prefix = join(scratch, 'prefix');
    const install = spawnSync('npm', ['install', '-g', '--prefer-offline', '--no-audit', '--no-fund', '--prefix', prefix, tarball], { cwd: scratch, encoding: 'utf8', timeout: 180_000 });
    assert.equal(install.status, 0, install.stderr);
    const bin = join(prefix, 'bin', 'kmip-edge');
    assert.ok(!readdirSync(join(prefix, 'lib', 'node_modules', 'kmip-edge')).includes('src'), 'no src/ installed');
    // Run from a folder outside the repository, with the installed package only.
    const outsideRepo = join(scratch, 'operator'); // under the temporary folder, outside the repository
    mkdirSync(outsideRepo);
    const installed = (...args: string[]) => {
      const run = spawnSync(bin, args, { cwd: outsideRepo, encoding: 'utf8', timeout: 60_000 });
      return { status: run.status, stdout: run.stdout, stderr: run.stderr };
    };
    const version = installed('--version');
    assert.equal(version.status, 0, version.stderr);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);

    const uid = await createActiveKey(kms, port, 'tarball-key');
    const added = installed('device', 'add', '--data', data, '--id', 'sensor-1', '--key-uid', uid);
    assert.equal(added.status, 0, added.stderr);
    const deviceKey = (JSON.parse(added.stdout) as { key: string }).key;
    const config = join(outsideRepo, 'config.yaml');
    writeFileSync(config, [
      `data: ${data}`,
      'logLevel: warn',
      'upstream:',
      `  address: 127.0.0.1:${port}`,
      `  ca: ${join(kms, 'ca.pem')}`,
      `  cert: ${join(kms, 'client.pem')}`,
      `  key: ${join(kms, 'client.key')}`,
      'mqtt:',
      `  url: mqtt://127.0.0.1:${broker.port}`,
      'metrics:',
      '  listen: 127.0.0.1:0',
      '',
    ].join('\n'));
    const checked = installed('config', 'check', config);
    assert.equal(checked.status, 0, checked.stderr);

    const child = spawn(bin, ['run', '--config', config], { cwd: outsideRepo, stdio: ['ignore', 'pipe', 'pipe'] });
    agent = child;
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      child.stdout!.once('data', (line: Buffer) => resolve(JSON.parse(line.toString()) as Record<string, unknown>));
      child.once('exit', (code) => reject(new Error(`the installed kmip-edge run exited ${code}: ${stderr}`)));
    });
    const metrics = ready.metrics as string;
    assert.match(metrics, /^127\.0\.0\.1:\d+$/);

    const sim = installed('device-sim', '--id', 'sensor-1', '--key', deviceKey, '--mqtt', `mqtt://127.0.0.1:${broker.port}`, '--state', join(work, 'sensor.counter'), 'get', '--uid', uid);
    assert.equal(sim.status, 0, sim.stderr);
    const exposition = await (await fetch(`http://${metrics}/metrics`)).text();
    assert.match(exposition, /^kmip_edge_device_requests_total\{operation="Get",result="Success"\} 1$/m, 'the Get counted in /metrics');
    assert.equal((await fetch(`http://${metrics}/readyz`)).status, 200);

    assert.equal(await terminate(child), 0, stderr);
    agent = undefined;
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
  } finally {
    if (agent !== undefined) {
      agent.kill('SIGKILL');
      await exited(agent);
    }
    server.kill('SIGTERM');
    await broker.stop();
    rmSync(scratch, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
});
