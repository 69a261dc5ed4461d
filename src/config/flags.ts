/**
 * `kmip-edge run` flags and the configuration fields they set: one row per flag, so that the
 * parser, the merge (flags override the file), the error messages (a value that came from a flag
 * is reported under the flag's name) and `run --help` all come from the same table.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../cli/errors.ts';

export interface RunFlag {
  /** The configuration field, as a dotted path. */
  path: string;
  help: string;
  /** Repeatable; the flag's values replace the file's list (or mapping). */
  multiple?: true;
  /** A relative path in the file is resolved against the file's folder; on the command line, against the working folder. */
  file?: true;
  /** `KEY=VALUE` pairs forming a mapping. */
  pairs?: true;
  value: string;
}

export const RUN_FLAGS = {
  data: { path: 'data', value: 'DIR', file: true, help: "the agent's data folder: store, master key, admin socket (created owner-only)" },
  'log-level': { path: 'logLevel', value: 'LEVEL', help: 'fatal, error, warn, info (default), debug, trace or silent' },
  upstream: { path: 'upstream.address', value: 'HOST:PORT', help: 'the upstream KMIP server' },
  'upstream-ca': { path: 'upstream.ca', value: 'F', file: true, help: 'PEM: the CA(s) of the KMIP server certificate' },
  'upstream-cert': { path: 'upstream.cert', value: 'F', file: true, help: "PEM: the agent's client certificate" },
  'upstream-key': { path: 'upstream.key', value: 'F', file: true, help: "PEM: the client certificate's private key" },
  'upstream-server-name': { path: 'upstream.serverName', value: 'NAME', help: 'the name to verify in the server certificate (default: the --upstream host)' },
  mqtt: { path: 'mqtt.url', value: 'URL', help: 'the devices\' broker: mqtt://HOST:PORT or mqtts://HOST:PORT' },
  'mqtt-prefix': { path: 'mqtt.prefix', value: 'P', help: 'topic prefix: P/<device>/up and P/<device>/down (default kmip-edge)' },
  'mqtt-username': { path: 'mqtt.username', value: 'U', help: 'the MQTT user name of the agent' },
  'mqtt-password-file': { path: 'mqtt.passwordFile', value: 'F', file: true, help: 'a file holding the MQTT password (never on the command line)' },
  'mqtt-ca': { path: 'mqtt.ca', value: 'F', file: true, help: 'PEM: the CA of the broker certificate (mqtts://)' },
  'mqtt-cert': { path: 'mqtt.cert', value: 'F', file: true, help: 'PEM: a client certificate for the broker (mqtts://)' },
  'mqtt-key': { path: 'mqtt.key', value: 'F', file: true, help: 'PEM: its private key' },
  'mqtt-client-id': { path: 'mqtt.clientId', value: 'ID', help: 'the MQTT client id' },
  'embedded-broker': { path: 'embeddedBroker', value: 'HOST:PORT', help: 'start an MQTT 3.1.1 broker in the agent (single gateway; no login)' },
  serial: { path: 'serial', value: 'PATH', multiple: true, file: true, help: 'a serial line with devices (SLIP frames); repeatable' },
  'push-listen': { path: 'pushListener.listen', value: 'HOST:PORT', help: 'listen for Put/Notify from the upstream (mutual TLS)' },
  'push-cert': { path: 'pushListener.cert', value: 'F', file: true, help: "PEM: the listener's certificate" },
  'push-key': { path: 'pushListener.key', value: 'F', file: true, help: 'PEM: its private key' },
  'push-ca': { path: 'pushListener.ca', value: 'F', file: true, help: "PEM: the CA of the upstream's certificate" },
  'push-peer-cert': { path: 'pushListener.peerCert', value: 'F', file: true, help: "PEM: the upstream's certificate, pinned" },
  'push-peer-name': { path: 'pushListener.peerName', value: 'NAME', help: "a name the upstream's certificate must be valid for" },
  'push-ciphers': { path: 'pushListener.ciphers', value: 'LIST', help: 'TLS 1.2 cipher list for old key servers (default: ECDHE + AES-GCM/ChaCha20)' },
  'kmip-listen': { path: 'kmip.listen', value: 'HOST:PORT', help: 'the local KMIP endpoint for tape libraries and storage arrays (mutual TLS, 5696 by convention)' },
  'kmip-cert': { path: 'kmip.cert', value: 'F', file: true, help: "PEM: the endpoint's certificate" },
  'kmip-key': { path: 'kmip.key', value: 'F', file: true, help: 'PEM: its private key' },
  'kmip-ca': { path: 'kmip.ca', value: 'F', file: true, help: "PEM: the CA(s) of the KMIP clients' certificates (clients: kmip-edge client add)" },
  'kmip-ciphers': { path: 'kmip.ciphers', value: 'LIST', help: 'TLS 1.2 cipher list for old KMIP clients (default: ECDHE + AES-GCM/ChaCha20, then AES-CBC-SHA256)' },
  'nonce-mac-key': { path: 'nonceMac.defaultKey', value: 'MAC_UID', help: 'fetch keys with nonce-MAC under this HMAC-SHA256 key (ARCHITECTURE.md §6)' },
  'nonce-mac-for': { path: 'nonceMac.perKey', value: 'KEY_UID=MAC_UID', multiple: true, pairs: true, help: 'a MAC key for one key; repeatable' },
  metrics: { path: 'metrics.listen', value: 'HOST:PORT', help: 'Prometheus /metrics, /healthz, /readyz (loopback unless told otherwise)' },
} as const satisfies Record<string, RunFlag>;

export type RunFlagName = keyof typeof RUN_FLAGS;

type ParseOptions = { [K in RunFlagName | 'config' | 'help']: { type: 'string' | 'boolean'; multiple?: boolean } };

const PARSE_OPTIONS: ParseOptions = {
  ...(Object.fromEntries(Object.entries(RUN_FLAGS).map(([name, flag]) => [name, { type: 'string', ...('multiple' in flag && { multiple: true }) }])) as Omit<ParseOptions, 'config' | 'help'>),
  config: { type: 'string' },
  help: { type: 'boolean' },
};

export interface ParsedRunFlags {
  configFile?: string;
  help: boolean;
  /** Configuration fields set by flags, by dotted path (raw: validated with the file's). */
  values: Map<string, unknown>;
  /** Dotted path → the flag that set it, for messages. */
  flagOf: Map<string, string>;
}

/** Parses `run` (and `config check`) flags; only unknown flags and malformed pairs are refused here. */
export function parseRunFlags(args: string[], allowPositionals = false): ParsedRunFlags & { positionals: string[] } {
  const { values, positionals } = parseArgs({ args, options: PARSE_OPTIONS, strict: true, allowPositionals });
  const parsed: ParsedRunFlags & { positionals: string[] } = { help: values.help === true, values: new Map(), flagOf: new Map(), positionals };
  if (typeof values.config === 'string') parsed.configFile = values.config;
  for (const [name, flag] of Object.entries(RUN_FLAGS) as [RunFlagName, RunFlag][]) {
    const value = (values as Record<string, unknown>)[name];
    if (value === undefined) continue;
    let field: unknown = value;
    if (flag.pairs) {
      const pairs: Record<string, string> = {};
      for (const pair of value as string[]) {
        const at = pair.indexOf('=');
        if (at <= 0 || at === pair.length - 1) throw new UsageError(`--${name}: got ${JSON.stringify(pair)}; expected ${flag.value}`);
        pairs[pair.slice(0, at)] = pair.slice(at + 1);
      }
      field = pairs;
    }
    parsed.values.set(flag.path, field);
    parsed.flagOf.set(flag.path, `--${name}`);
  }
  return parsed;
}

/** Paths of the fields that hold file names (resolved against the configuration file's folder). */
export const FILE_FIELDS: ReadonlySet<string> = new Set(Object.values(RUN_FLAGS as Record<string, RunFlag>).filter((flag) => flag.file).map((flag) => flag.path));
