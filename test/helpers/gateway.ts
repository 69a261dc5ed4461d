/**
 * A gateway for device tests: the development server as upstream, the agent core on LevelDB in a
 * temporary folder, a device registry and the device service — everything but a transport.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentCore, type NonceMacConfig } from '../../src/agent/agent-core.ts';
import type { KmipTransport } from '../../src/net/transport.ts';
import { DeviceService } from '../../src/devices/device-service.ts';
import { DeviceRegistry } from '../../src/devices/registry.ts';
import type { RelayOptions } from '../../src/devices/push-relay.ts';
import { buildRequestMessage } from '../../src/kmip/message.ts';
import type { LedgerOptions } from '../../src/agent/ledger.ts';
import { silentLogger } from '../../src/log.ts';
import { TlsPool } from '../../src/net/tls-pool.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import type { TtlvItem } from '../../src/ttlv/item.ts';
import { KmipClient } from '../../src/upstream/client.ts';
import { startDevServer } from './dev-server.ts';

export async function startGateway(options: { leaseSeconds?: number; ledger?: Partial<Omit<LedgerOptions, 'store' | 'allocate'>>; relay?: RelayOptions; wrapTransport?: (inner: KmipTransport) => KmipTransport; nonceMac?: NonceMacConfig } = {}) {
  const dev = await startDevServer({ leaseSeconds: options.leaseSeconds ?? 600 });
  const admin = new KmipClient({ transport: new TlsPool(dev.endpoint), version: { major: 1, minor: 2 } });
  const data = mkdtempSync(join(tmpdir(), 'kmip-edge-gateway-'));
  const pool = new TlsPool(dev.endpoint);
  const client = new KmipClient({ transport: options.wrapTransport ? options.wrapTransport(pool) : pool, version: { major: 1, minor: 2 } });
  const agent = await AgentCore.open({ data, client, ...(options.ledger && { ledger: options.ledger }), ...(options.nonceMac && { nonceMac: options.nonceMac }) });
  // The device registry and replay state live in the agent's store, as with `kmip-edge run`.
  const deviceStore = agent.store;
  const registry = new DeviceRegistry(deviceStore, agent.masterKey);
  const service = new DeviceService(agent, registry, deviceStore, silentLogger, options.relay);
  return {
    dev, admin, agent, deviceStore, registry, service,
    async stop(): Promise<void> {
      await service.close();
      await agent.close();
      await client.close();
      await admin.close();
      await dev.stop();
    },
  };
}

/** A one-item KMIP 1.2 request message in TTLV, as a device sends it. */
export function deviceRequest(operation: number, payload: TtlvItem[]): Uint8Array {
  return encodeTtlv(buildRequestMessage({ major: 1, minor: 2 }, [{ operation, payload }]));
}
