/**
 * The agent's Put/Notify side in a process of its own, for tests that count its descriptors
 * (/proc/PID/fd): the agent core on LevelDB, the device service and the listener, with the
 * listener options given as JSON in argv[2]; prints {"port":P} once listening, stops on SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentCore } from '../../src/agent/agent-core.ts';
import { DeviceService } from '../../src/devices/device-service.ts';
import { DeviceRegistry } from '../../src/devices/registry.ts';
import { PushListener } from '../../src/inbound/push-listener.ts';
import { createLogger } from '../../src/log.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { KmipClient } from '../../src/upstream/client.ts';

const config = JSON.parse(process.argv[2]!) as { pki: string; data: string; upstreamPort: number; listener: Record<string, number> };
const file = (name: string) => readFileSync(join(config.pki, name));
const log = createLogger({ level: 'info' }, { write: (line: string) => void process.stderr.write(line) });
const client = new KmipClient({ transport: new TlsPool({ host: '127.0.0.1', port: config.upstreamPort, ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key') }) });
const agent = await AgentCore.open({ data: config.data, client, log });
const service = new DeviceService(agent, new DeviceRegistry(agent.store, agent.masterKey), agent.store, log);
const listener = await PushListener.start({
  host: '127.0.0.1', port: 0, ca: file('ca.pem'), cert: file('client.pem'), key: file('client.key'),
  upstream: { hostName: '127.0.0.1' }, apply: (push) => service.applyAndRelay(push), log, ...config.listener,
});
process.stdout.write(JSON.stringify({ port: listener.port }) + '\n');
process.once('SIGTERM', () => void (async () => {
  await listener.close();
  await service.close();
  await agent.close();
  await client.close();
  process.exit(0);
})());
