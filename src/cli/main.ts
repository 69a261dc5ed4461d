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
import { runClientCommand } from './client-command.ts';
import { runDeviceSimCommand } from './device-sim-command.ts';
import { runAgentCommand } from './run-command.ts';
import { runKmipCommand } from './kmip-command.ts';
import { runCacheCommand } from './cache-command.ts';
import { runLedgerCommand } from './ledger-command.ts';
import { runStatusCommand } from './status-command.ts';
import { runTtlvCommand } from './ttlv-command.ts';
import { runConfigCommand } from './config-command.ts';
import { runBackupCommand, runRestoreCommand } from './backup-command.ts';
import { runMasterKeyCommand } from './master-key-command.ts';
import { COMMANDS_WITH_HELP, helpText } from './help.ts';
import { packageRoot } from './package-root.ts';
import { ConfigError } from '../config/config-error.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Codes raised by codecs and parsers for input the user gave: exit 2. */
const BAD_INPUT = /^(TTLV_|KMIP_TEXT_|HEX_|CLI_|TLS_CONFIG_|KMIP_VERSION_|STORE_LOCKED|DEVICE_|CLIENT_|CONFIG_|DEV_PKI_|MASTER_KEY_)/;

export async function main(argv: string[]): Promise<number> {
  const write = (text: string): void => {
    process.stdout.write(text);
  };
  const [command, ...rest] = argv;
  try {
    if (command === '--version' || command === '-V') {
      write(`${(JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version}\n`);
      return 0;
    }
    // --help anywhere after a command answers before the command runs (demo, bench, run …).
    if (command !== undefined && COMMANDS_WITH_HELP.includes(command) && (rest.includes('--help') || rest.includes('-h'))) {
      write(helpText(command));
      return 0;
    }
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
      case 'client':
        return await runClientCommand(rest, write);
      case 'cache':
        return await runCacheCommand(rest, write);
      case 'ledger':
        return await runLedgerCommand(rest, write);
      case 'status':
        return await runStatusCommand(rest, write);
      case 'bench':
        return await runBenchCommand(rest, write);
      case 'config':
        return runConfigCommand(rest, write);
      case 'backup':
        return await runBackupCommand(rest, write);
      case 'restore':
        return await runRestoreCommand(rest, write);
      case 'master-key':
        return await runMasterKeyCommand(rest, write);
      case 'demo':
        return await runDemo(rest, write);
      case 'help':
      case '--help':
      case '-h':
        write(helpText(rest[0]));
        return 0;
      case undefined:
        process.stderr.write(helpText(undefined));
        return 2;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}; try kmip-edge --help`);
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const line of error.lines) process.stderr.write(`kmip-edge: ${line}\n`);
      return 2;
    }
    if (isKmipEdgeError(error) && BAD_INPUT.test(error.code)) {
      process.stderr.write(`kmip-edge: ${error.message.split('\n')[0]}\n`);
      if (error instanceof UsageError && error.message.includes('\n')) process.stderr.write(error.message.split('\n').slice(1).join('\n') + '\n');
      return 2;
    }
    if (error instanceof TypeError && (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      // Node's text goes on about positionals after '--': the first sentence and where to look.
      const help = command !== undefined && COMMANDS_WITH_HELP.includes(command) ? `; try kmip-edge ${command} --help` : '';
      process.stderr.write(`kmip-edge: ${error.message.split(/\. (?=To specify)/)[0]!.replace(/\.$/, '')}${help}\n`);
      return 2;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
