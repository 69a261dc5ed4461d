#!/usr/bin/env node
/**
 * The kmip-edge command line (CLI.md). Machine output on stdout, messages on stderr; exit 0 on
 * success, 1 when an operation ran and failed, 2 for bad usage or bad input (one line, no stack).
 */
import { isKmipEdgeError } from '../errors.ts';
import { runBenchCommand } from './bench-command.ts';
import { runDemo } from './demo-command.ts';
import { UsageError } from './errors.ts';
import { runDevServerCommand } from './dev-server-command.ts';
import { runDeviceCommand } from './device-command.ts';
import { runDeviceSimCommand } from './device-sim-command.ts';
import { runAgentCommand } from './run-command.ts';
import { KMIP_USAGE, runKmipCommand } from './kmip-command.ts';
import { runCacheCommand } from './cache-command.ts';
import { runLedgerCommand } from './ledger-command.ts';
import { runStatusCommand } from './status-command.ts';
import { runTtlvCommand, TTLV_USAGE } from './ttlv-command.ts';

const USAGE = `kmip-edge — KMIP key agent for the edge

commands:
  kmip-edge demo                                  the all-in-one demo on embedded defaults
  kmip-edge ttlv decode|encode …                  TTLV ⇄ KMIP XML / JSON
  kmip-edge kmip --server … OP …                  one KMIP operation against a server
  kmip-edge dev-server --port P --dir D           the development KMIP server
  kmip-edge ledger --data DIR [--json]            usage allocations recorded by the agent
  kmip-edge cache --data DIR [--json]             the agent's cached keys, never their material
  kmip-edge status --data DIR [--json]            a running agent: upstream, keys, devices, pushes
  kmip-edge device add|list|remove --data DIR …   provision devices (add prints the device key once)
  kmip-edge run --data DIR --upstream … --mqtt URL  the agent: upstream client, cache, ledger, devices
  kmip-edge device-sim --id ID --key HEX --mqtt URL get|allocate|lease --uid U   a simulated device
  kmip-edge bench [ttlv|upstream|ledger|devices]  benchmarks with same-run baselines

${TTLV_USAGE}

${KMIP_USAGE}`;

/** Codes raised by codecs and parsers for input the user gave: exit 2. */
const BAD_INPUT = /^(TTLV_|KMIP_TEXT_|HEX_|CLI_|TLS_CONFIG_|KMIP_VERSION_|STORE_LOCKED|DEVICE_)/;

export async function main(argv: string[]): Promise<number> {
  const write = (text: string): void => {
    process.stdout.write(text);
  };
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'ttlv':
        runTtlvCommand(rest, write);
        return 0;
      case 'kmip':
        return await runKmipCommand(rest, write);
      case 'dev-server':
        return await runDevServerCommand(rest, write);
      case 'run':
        return await runAgentCommand(rest, write);
      case 'device-sim':
        return await runDeviceSimCommand(rest, write);
      case 'device':
        return await runDeviceCommand(rest, write);
      case 'cache':
        return await runCacheCommand(rest, write);
      case 'ledger':
        return await runLedgerCommand(rest, write);
      case 'status':
        return await runStatusCommand(rest, write);
      case 'bench':
        return await runBenchCommand(rest, write);
      case 'demo':
        return await runDemo(rest, write);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stderr.write(USAGE + '\n');
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}; try kmip-edge help`);
    }
  } catch (error) {
    if (isKmipEdgeError(error) && BAD_INPUT.test(error.code)) {
      process.stderr.write(`kmip-edge: ${error.message.split('\n')[0]}\n`);
      if (error instanceof UsageError && error.message.includes('\n')) process.stderr.write(error.message.split('\n').slice(1).join('\n') + '\n');
      return 2;
    }
    if (error instanceof TypeError && (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`kmip-edge: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
