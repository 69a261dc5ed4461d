/**
 * The agent process the push crash test kills: the agent core, device service and Put/Notify
 * listener, wired as `kmip-edge run` wires them. With CRASH_AFTER_APPLY=Put it SIGKILLs itself
 * the moment the first Put is durable — after the apply, before the acknowledgement leaves.
 *
 *   node --import tsx test/crash/push-child.ts DATA_DIR PKI_DIR UPSTREAM_PORT LISTEN_PORT
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { DeviceService } from '../../src/devices/device-service.ts';
import { DeviceRegistry } from '../../src/devices/registry.ts';
import { PushListener } from '../../src/inbound/push-listener.ts';
import { createLogger, pino } from '../../src/log.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { KmipClient } from '../../src/upstream/client.ts';

const [data, pki, upstreamPort, listenPort] = process.argv.slice(2) as [string, string, string, string];
const file = (name: string) => readFileSync(join(pki, name));
const log = createLogger({ level: 'info' }, pino.destination(2));
const client = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port: Number(upstreamPort), ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key') }), version: { major: 1, minor: 2 } });
const agent = await AgentCore.open({ data, client, log });
const service = new DeviceService(agent, new DeviceRegistry(agent.store, agent.masterKey), agent.store, log);
await PushListener.start({
  host: '127.0.0.1', port: Number(listenPort), ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key'), upstream: { hostName: '127.0.0.1' }, log,
  apply: async (push) => {
    const outcome = await service.applyAndRelay(push);
    process.stderr.write(`push ${push.operation} ${push.uniqueIdentifier}: ${outcome}\n`);
    if (process.env.CRASH_AFTER_APPLY === push.operation) process.kill(process.pid, 'SIGKILL');
    return outcome;
  },
});
process.stdout.write('ready\n');
