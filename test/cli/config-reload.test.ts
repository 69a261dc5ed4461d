/**
 * `kmip-edge run --config FILE` as real processes (dev-server upstream, the agent, device-sim):
 * SIGHUP reloads the log level, the nonce-MAC mapping and the device registry and keeps serving
 * (it used to kill the agent: exit 129); a change that needs a restart is logged by field and
 * the running value kept; a file that no longer validates changes nothing. The ready line says
 * whether the upstream answered, and an unreachable upstream is a warning with the reason.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { freePort } from '../../src/bench/free-port.ts';
import { ROOT, runCli } from '../helpers/cli.ts';
import { addDevice, createActiveKey, startKeyServer, terminate, upstreamArgs } from '../helpers/processes.ts';
import { until } from '../helpers/until.ts';

interface Agent {
  child: ChildProcess;
  ready: Record<string, unknown>;
  /** Log lines (JSON) written to stderr so far. */
  logs: Record<string, unknown>[];
}

/** `kmip-edge run …`, with its stderr log lines collected. */
function startAgent(args: string[]): Promise<Agent> {
  const child = spawn(process.execPath, [join(ROOT, 'dist/kmip-edge.mjs'), 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let pending = '';
  let raw = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    raw += chunk.toString();
    pending += chunk.toString();
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ text: line });
      }
    }
  });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', (line: Buffer) => resolve({ child, logs, ready: JSON.parse(line.toString()) as Record<string, unknown> }));
    child.once('exit', (code) => reject(new Error(`run exited ${code}: ${raw}`)));
  });
}

const events = (agent: Agent, event: string): Record<string, unknown>[] => agent.logs.filter((line) => line.event === event);

it('SIGHUP reloads the log level, the nonce-MAC mapping and the device registry; the agent keeps serving', async () => {
  const { work, kms, data, port, server } = await startKeyServer('reload');
  let agent: Agent | undefined;
  try {
    const uid = await createActiveKey(kms, port, 'reload-key');
    const key = addDevice(data, 'reload-dev', uid);
    const config = join(work, 'agent.yaml');
    const brokerPort = await freePort();
    const write = (extra: string, level = 'info'): void => writeFileSync(config, `data: ${data}\nlogLevel: ${level}\nupstream:\n  address: 127.0.0.1:${port}\n  ca: kms/ca.pem\n  cert: kms/client.pem\n  key: kms/client.key\nembeddedBroker: 127.0.0.1:${brokerPort}\n${extra}`);
    write('');
    agent = await startAgent(['--config', config]);
    assert.equal(agent.ready.upstream, 'online');
    const get = (): { ok: boolean } => {
      const sim = runCli(['device-sim', '--id', 'reload-dev', '--key', key, '--mqtt', `mqtt://127.0.0.1:${brokerPort}`, '--state', join(work, 'dev.counter'), 'get', '--uid', uid]);
      assert.equal(sim.status, 0, sim.stderr);
      return JSON.parse(sim.stdout) as { ok: boolean };
    };
    assert.equal(get().ok, true);
    assert.equal(agent.logs.filter((line) => line.msg === 'key served').length, 0, 'no debug lines at info');

    // logLevel and nonceMac apply at once; mqtt.prefix needs a restart and is named.
    write('mqtt:\n  prefix: elsewhere\nnonceMac:\n  defaultKey: some-mac-key\n', 'debug');
    agent.child.kill('SIGHUP');
    await until(() => events(agent!, 'config_reloaded').length === 1, 'the reload');
    assert.deepEqual(events(agent, 'config_reloaded')[0]!.applied, ['logLevel', 'nonceMac.defaultKey']);
    assert.equal(events(agent, 'config_reloaded')[0]!.devices, 1, 'the registry was read again');
    assert.deepEqual(events(agent, 'config_restart_needed')[0]!.fields, [`${config}: mqtt.prefix`]);
    assert.equal(agent.child.exitCode, null, 'SIGHUP does not end the agent');
    // Served with the old prefix still, and now logged at debug. (The MAC key was never fetched:
    // the key is cached, so the mapping is used only at its next fill.)
    write('', 'debug');
    agent.child.kill('SIGHUP');
    await until(() => events(agent!, 'config_reloaded').length === 2, 'the second reload');
    assert.equal(get().ok, true);
    await until(() => agent!.logs.some((line) => line.msg === 'key served' && line.device === 'reload-dev'), 'a debug line for the device request');

    // A file that no longer validates changes nothing: the problem is logged, serving goes on.
    writeFileSync(config, 'logLevel: loud\n');
    agent.child.kill('SIGHUP');
    await until(() => events(agent!, 'config_reload_failed').length === 1, 'the refused reload');
    assert.deepEqual(events(agent, 'config_reload_failed')[0]!.problems, [
      `${config}: data: missing; expected the path of the agent's data folder (created if missing)`,
      `${config}: logLevel: got "loud"; expected one of fatal, error, warn, info, debug, trace, silent`,
      `${config}: upstream.address: missing; expected HOST:PORT with a port 1-65535, e.g. kms.example.com:5696`,
      `${config}: upstream.ca: missing; expected the path of the PEM file of the CA(s) that sign the KMIP server certificate`,
      `${config}: upstream.cert: missing; expected the path of the PEM file of the agent's client certificate`,
      `${config}: upstream.key: missing; expected the path of the PEM file of the client certificate's private key`,
    ]);
    assert.equal(get().ok, true);
    assert.equal(await terminate(agent.child), 0);
    agent = undefined;
  } finally {
    agent?.child.kill('SIGKILL');
    server.kill('SIGTERM');
  }
});

it('an upstream unreachable at start: ready says "offline" and the warning gives the reason; reachable: "online"', async () => {
  const { data, kms, port, server } = await startKeyServer('upstream-state');
  const agents: Agent[] = [];
  try {
    // Wrong name in the server certificate: the TLS reason in the words `kmip-edge kmip` uses.
    const online = await startAgent(['--data', data, ...upstreamArgs(kms, port), '--embedded-broker', '127.0.0.1:0']);
    agents.push(online);
    assert.equal(online.ready.upstream, 'online');
    assert.equal(await terminate(online.child), 0);
    const wrongName = await startAgent(['--data', data, ...upstreamArgs(kms, port), '--upstream-server-name', 'kms.example.com', '--embedded-broker', '127.0.0.1:0']);
    agents.push(wrongName);
    assert.equal(wrongName.ready.upstream, 'offline');
    // stderr may arrive after the ready line on stdout
    await until(() => events(wrongName, 'upstream_offline').length > 0, 'the warning');
    const warning = events(wrongName, 'upstream_offline')[0]!;
    assert.equal(warning.level, 40);
    assert.match(String(warning.reason), new RegExp(`^TLS with 127\\.0\\.0\\.1:${port} failed: the server certificate is not for this host name`));
    assert.equal(await terminate(wrongName.child), 0);

    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));
    const down = await startAgent(['--data', data, ...upstreamArgs(kms, port), '--embedded-broker', '127.0.0.1:0']);
    agents.push(down);
    assert.equal(down.ready.upstream, 'offline');
    await until(() => events(down, 'upstream_offline').length > 0, 'the warning');
    assert.match(String(events(down, 'upstream_offline')[0]!.reason), new RegExp(`^cannot connect to 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`));
    assert.equal(await terminate(down.child), 0);
  } finally {
    for (const agent of agents) agent.child.kill('SIGKILL');
    server.kill('SIGTERM');
  }
});
