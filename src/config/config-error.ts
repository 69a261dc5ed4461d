import { KmipEdgeError } from '../errors.ts';

/**
 * An operator error in the configuration or the environment it names (a field, a certificate
 * file, a port in use, the data folder): one line per problem, each naming where it is, the value
 * given and what is allowed or what to do. The CLI prints every line and exits 2, never a stack.
 * Codes: CONFIG_INVALID (the file or flags), CONFIG_UNREADABLE (the file itself), CONFIG_TLS
 * (certificates and keys), CONFIG_LISTEN (an address cannot be bound), CONFIG_DATA (the data folder).
 */
export class ConfigError extends KmipEdgeError {
  readonly lines: readonly string[];

  constructor(code: 'CONFIG_INVALID' | 'CONFIG_UNREADABLE' | 'CONFIG_TLS' | 'CONFIG_LISTEN' | 'CONFIG_DATA', lines: string[], options?: { cause?: unknown }) {
    super(code, lines.join('\n'), options);
    this.lines = lines;
  }
}
