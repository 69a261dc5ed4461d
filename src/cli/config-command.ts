/**
 * `kmip-edge config check FILE [run flags]` (CLI.md wave 2): validates a configuration file as
 * `run` reads it (with any run flags over it) and prints the effective configuration as one JSON
 * object — defaults filled in, relative paths resolved against the file's folder. Exit 2 with
 * one line per problem otherwise (main.ts prints ConfigError lines).
 */
import { parseRunFlags } from '../config/flags.ts';
import { describeConfig, loadAgentConfig } from '../config/loader.ts';
import { UsageError } from './errors.ts';

export function runConfigCommand(args: string[], out: (text: string) => void): number {
  const [action, ...rest] = args;
  if (action !== 'check') throw new UsageError('config needs check FILE');
  const flags = parseRunFlags(rest, true);
  if (flags.configFile !== undefined) throw new UsageError('config check takes the file as its argument: config check FILE');
  if (flags.positionals.length !== 1) throw new UsageError('config check needs exactly one FILE');
  out(JSON.stringify(describeConfig(loadAgentConfig({ file: flags.positionals[0]!, flags }))) + '\n');
  return 0;
}
