/**
 * How to reach an MQTT broker: address, TLS (peer always verified, chain and host name), login and
 * client id — as one typed object (`MqttConnectOptions`) that the transport takes, built from what
 * an operator gives (`MqttSettings`: a URL and file paths, from flags or a configuration file) by
 * `resolveMqttSettings`, which reads the files. Secrets only by file: a password on a command line
 * is visible to every user in `ps`.
 */
import { createHash } from 'node:crypto';
import { fstatSync, openSync, readSync, closeSync, realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { KmipEdgeError } from '../errors.ts';
import { readPem } from '../net/tls-options.ts';

export interface MqttTlsOptions {
  /** PEM of the CA(s) that sign the broker's certificate; Node's root CAs when absent. */
  ca?: Buffer;
  /** PEM of a client certificate and its key, for brokers that require one. */
  cert?: Buffer;
  key?: Buffer;
  /** Name to verify in the broker's certificate (and send as SNI); defaults to `host`. */
  serverName?: string;
}

export interface MqttConnectOptions {
  host: string;
  port: number;
  /** TLS to the broker (`mqtts://`). There is deliberately no switch to skip verifying the broker. */
  tls?: MqttTlsOptions;
  username?: string;
  password?: Buffer;
  clientId?: string;
  /** 4 = MQTT 3.1.1 (the default; aedes speaks only this), 5 = MQTT 5. */
  protocolVersion?: 4 | 5;
  /**
   * Keep the session while disconnected (clean session off, MQTT 3.1.1 §3.1.2.4; session expiry
   * MQTT 5 §3.1.2.11.2): the broker queues the QoS 1 frames devices publish meanwhile. Needs a
   * client id that stays the same across restarts.
   */
  persistentSession?: boolean;
}

/** The broker as an operator names it: a URL and paths to files (flags or a configuration file). */
export interface MqttSettings {
  /** mqtt://HOST[:PORT] or mqtts://HOST[:PORT] */
  url: string;
  username?: string;
  passwordFile?: string;
  /** PEM files: the broker's CA, a client certificate and its key. */
  ca?: string;
  cert?: string;
  key?: string;
  clientId?: string;
}

/** MQTT 3.1.1 §3.1.3.5 and MQTT 5 §3.1.3.5: a password is Binary Data of at most 65,535 bytes. */
export const MAX_MQTT_PASSWORD_BYTES = 65_535;

function usage(message: string): KmipEdgeError {
  return new KmipEdgeError('CLI_USAGE', message);
}

/**
 * Reads an MQTT password from a file (the first line; a trailing newline, as `echo` writes, is
 * not part of it), refusing an empty file or one over the protocol's limit before reading it.
 */
export function readMqttPassword(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw new KmipEdgeError('CLI_INPUT', `cannot read the MQTT password file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    const { size } = fstatSync(fd);
    if (size > MAX_MQTT_PASSWORD_BYTES + 2) throw new KmipEdgeError('CLI_INPUT', `the MQTT password file ${path} has ${size} bytes; a password has at most ${MAX_MQTT_PASSWORD_BYTES}`);
    const bytes = Buffer.alloc(size);
    let read = 0;
    while (read < size) {
      const n = readSync(fd, bytes, read, size - read, null);
      if (n === 0) break;
      read += n;
    }
    let text = bytes.subarray(0, read);
    const newline = text.indexOf(0x0a);
    if (newline >= 0) {
      if (text.subarray(newline + 1).some((byte) => byte !== 0x0a && byte !== 0x0d)) throw new KmipEdgeError('CLI_INPUT', `the MQTT password file ${path} holds more than one line`);
      text = text.subarray(0, newline > 0 && text[newline - 1] === 0x0d ? newline - 1 : newline);
    }
    if (text.length === 0) throw new KmipEdgeError('CLI_INPUT', `the MQTT password file ${path} is empty`);
    if (text.length > MAX_MQTT_PASSWORD_BYTES) throw new KmipEdgeError('CLI_INPUT', `the MQTT password in ${path} has ${text.length} bytes; at most ${MAX_MQTT_PASSWORD_BYTES}`);
    return Buffer.from(text);
  } finally {
    closeSync(fd);
  }
}

/** "mqtt://host:port" → its parts; a missing scheme, a path or credentials in the URL are refused. */
export function parseMqttUrl(url: string): { tls: boolean; host: string; port: number } {
  const match = /^(mqtts?):\/\/(?:([^@/]*)@)?(\[[0-9A-Fa-f:.]+\]|[^:/@[\]]+)(?::(\d{1,5}))?\/?$/.exec(url);
  if (!match) throw usage(`--mqtt takes mqtt://HOST:PORT or mqtts://HOST:PORT, not ${JSON.stringify(url)}`);
  if (match[2] !== undefined) throw usage('--mqtt: no credentials in the URL (a command line is visible in ps); use --mqtt-username U --mqtt-password-file F');
  const tls = match[1] === 'mqtts';
  const port = match[4] === undefined ? (tls ? 8883 : 1883) : Number(match[4]);
  if (!(port > 0 && port < 65536)) throw usage(`--mqtt: port ${match[4]} is not 1 to 65535`);
  return { tls, host: match[3]!.replace(/^\[|\]$/g, ''), port };
}

/**
 * Reads and checks what `settings` names: the URL, the password file, the PEM files (parsed,
 * and the key matched to the certificate, so that a mistake is one line at start rather than a
 * refused handshake later). Errors are KmipEdgeErrors with a one-line message (CLI exit 2).
 */
export function resolveMqttSettings(settings: MqttSettings, defaults: { clientId?: string; persistentSession?: boolean } = {}): MqttConnectOptions {
  const { tls, host, port } = parseMqttUrl(settings.url);
  if (!tls) {
    for (const [given, flag] of [[settings.ca, '--mqtt-ca'], [settings.cert, '--mqtt-cert'], [settings.key, '--mqtt-key']] as const) {
      if (given !== undefined) throw usage(`${flag} is for TLS to the broker: use an mqtts:// URL`);
    }
  }
  if ((settings.cert === undefined) !== (settings.key === undefined)) throw usage('--mqtt-cert and --mqtt-key go together (a client certificate and its key)');
  if (settings.passwordFile !== undefined && settings.username === undefined) throw usage('--mqtt-password-file needs --mqtt-username');
  const clientId = settings.clientId ?? defaults.clientId;
  if (clientId !== undefined && !/^[\x21-\x7e]{1,128}$/.test(clientId)) throw usage(`--mqtt-client-id: 1 to 128 printable ASCII characters, not ${JSON.stringify(clientId)}`);
  const options: MqttConnectOptions = {
    host, port,
    ...(settings.username !== undefined && { username: settings.username }),
    ...(settings.passwordFile !== undefined && { password: readMqttPassword(settings.passwordFile) }),
    ...(clientId !== undefined && { clientId }),
    ...(defaults.persistentSession !== undefined && { persistentSession: defaults.persistentSession }),
  };
  if (tls) {
    const ca = settings.ca === undefined ? undefined : readPem(settings.ca, 'MQTT broker CA');
    const cert = settings.cert === undefined ? undefined : readPem(settings.cert, 'MQTT client certificate');
    const key = settings.key === undefined ? undefined : readPem(settings.key, 'MQTT client key');
    try {
      if (ca) createSecureContext({ ca });
    } catch (error) {
      throw new KmipEdgeError('TLS_CONFIG_INVALID', `the MQTT broker CA ${settings.ca} is not a PEM certificate: ${(error as Error).message}`);
    }
    try {
      if (cert && key) createSecureContext({ cert, key });
    } catch (error) {
      throw new KmipEdgeError('TLS_CONFIG_INVALID', `the MQTT client certificate ${settings.cert} and key ${settings.key} do not make a TLS identity: ${(error as Error).message}`);
    }
    options.tls = { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) };
  }
  return options;
}

/**
 * A client id for the agent that stays the same across its restarts (so the broker keeps its
 * session and queues frames meanwhile) and differs between agents: derived from the host name
 * and the data folder, which one agent holds at a time.
 */
export function agentClientId(dataDir: string): string {
  let path = resolve(dataDir);
  try {
    path = realpathSync(path);
  } catch {
    // not created yet: its resolved name
  }
  return `kmip-edge-agent-${createHash('sha256').update(`${hostname()}\0${path}`).digest('hex').slice(0, 12)}`;
}
