/**
 * The kmip-edge command line (CLI.md). Machine output on stdout, messages on stderr; exit 0 on
 * success, 1 when an operation ran and failed, 2 for bad usage or bad input (one line, no stack).
 */
import { isKmipEdgeError } from '../errors.ts';
import { UsageError } from './errors.ts';
import { packageRoot } from './package-root.ts';
import { ConfigError } from '../config/config-error.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

type Write = (text: string) => void;
/**
 * Each command's module, loaded only when that command runs (issue #15 footprint: `--version`
 * and `run` do not load and evaluate the benchmarks, the development server, the demo, the KMIP
 * XML/JSON codecs …). The bundle keeps them in the same file, evaluated on first use.
 */
const COMMANDS: Readonly<Record<string, (rest: string[], write: Write) => Promise<number>>> = {
  ttlv: async (rest, write) => ((await import('./ttlv-command.ts')).runTtlvCommand(rest, write), 0),
  kmip: async (rest, write) => (await import('./kmip-command.ts')).runKmipCommand(rest, write),
  'dev-server': async (rest, write) => (await import('./dev-server-command.ts')).runDevServerCommand(rest, write),
  run: async (rest, write) => (await import('./run-command.ts')).runAgentCommand(rest, write),
  'device-sim': async (rest, write) => (await import('./device-sim-command.ts')).runDeviceSimCommand(rest, write),
  device: async (rest, write) => (await import('./device-command.ts')).runDeviceCommand(rest, write),
  client: async (rest, write) => (await import('./client-command.ts')).runClientCommand(rest, write),
  cache: async (rest, write) => (await import('./cache-command.ts')).runCacheCommand(rest, write),
  ledger: async (rest, write) => (await import('./ledger-command.ts')).runLedgerCommand(rest, write),
  status: async (rest, write) => (await import('./status-command.ts')).runStatusCommand(rest, write),
  bench: async (rest, write) => (await import('./bench-command.ts')).runBenchCommand(rest, write),
  config: async (rest, write) => (await import('./config-command.ts')).runConfigCommand(rest, write),
  backup: async (rest, write) => (await import('./backup-command.ts')).runBackupCommand(rest, write),
  restore: async (rest, write) => (await import('./backup-command.ts')).runRestoreCommand(rest, write),
  'master-key': async (rest, write) => (await import('./master-key-command.ts')).runMasterKeyCommand(rest, write),
  demo: async (rest, write) => (await import('./demo-command.ts')).runDemo(rest, write),
};

/** Codes raised by codecs and parsers for input the user gave: exit 2. */
const BAD_INPUT = /^(TTLV_|KMIP_TEXT_|HEX_|CLI_|TLS_CONFIG_|KMIP_VERSION_|STORE_LOCKED|DEVICE_|CLIENT_|CONFIG_|DEV_PKI_|MASTER_KEY_)/;

export async function main(argv: string[]): Promise<number> {
  const write: Write = (text) => {
    process.stdout.write(text);
  };
  const [command, ...rest] = argv;
  try {
    if (command === '--version' || command === '-V') {
      write(`${(JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version}\n`);
      return 0;
    }
    // --help anywhere after a command answers before the command runs (demo, bench, run …).
    if (command !== undefined && (rest.includes('--help') || rest.includes('-h'))) {
      const { COMMANDS_WITH_HELP, helpText } = await import('./help.ts');
      if (COMMANDS_WITH_HELP.includes(command)) {
        write(helpText(command));
        return 0;
      }
    }
    const run = command === undefined ? undefined : Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (run) return await run(rest, write);
    switch (command) {
      case 'help':
      case '--help':
      case '-h':
        write((await import('./help.ts')).helpText(rest[0]));
        return 0;
      case undefined:
        process.stderr.write((await import('./help.ts')).helpText(undefined));
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
      const { COMMANDS_WITH_HELP } = await import('./help.ts');
      const help = command !== undefined && COMMANDS_WITH_HELP.includes(command) ? `; try kmip-edge ${command} --help` : '';
      process.stderr.write(`kmip-edge: ${error.message.split(/\. (?=To specify)/)[0]!.replace(/\.$/, '')}${help}\n`);
      return 2;
    }
    throw error;
  }
}

// No top-level await: the bundle is CommonJS (scripts/launcher.mjs says why). What escapes main is
// thrown again as the rejected top-level await threw it, an uncaught exception — under `run`'s
// process guard exit 70, where a rejection nobody waits for would be logged and survived.
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.nextTick(() => {
      throw error;
    });
  },
);
