/**
 * The agent's configuration (`kmip-edge run --config FILE`, CLI.md wave 2): one typed object that
 * the YAML file and the command-line flags both fill (flags win, ./flags.ts), validated here.
 *
 * Every leaf says what it allows in its error text, so that a message can name the field path,
 * the value given and what is allowed (./loader.ts composes them). Objects are strict: an unknown
 * field is an error, not silently ignored (a misspelt `pushListner:` would otherwise turn a
 * feature off). Secrets are never inline: only paths of files holding them (`passwordFile`,
 * key files), so the file can be shared, logged and diffed (STYLE.md: key material never in logs).
 *
 * A section is one optional strict object here and one row per flag in ./flags.ts (as `kmip:`,
 * the local KMIP endpoint of issue #16, was added).
 */
import { list, oneOf, record, strictObject, text, type Output, type Schema } from './validate.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** HOST:PORT, IPv6 in brackets; a listen address may use port 0 (any free port, shown in the ready line). */
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/;
const MQTT_URL = /^mqtts?:\/\/(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d{1,5})?\/?$/;

function portOf(text: string): number {
  return Number(text.slice(text.lastIndexOf(':') + 1));
}

const filePath = (what: string) => text(`the path of ${what}`);
const address = (expected: string, minPort: number) =>
  text(expected).refine((value) => HOST_PORT.test(value) && portOf(value) >= minPort && portOf(value) <= 65535, expected);
/** Where the agent connects: port 1..65535. */
const remote = (example: string) => address(`HOST:PORT with a port 1-65535, e.g. ${example}`, 1);
/** Where the agent listens: port 0..65535 (0 = any free port). */
const listen = (example: string) => address(`HOST:PORT to listen on (port 0-65535, 0 = any free port), e.g. ${example}`, 0);

/** A strict mapping whose messages list its fields. */
function section<Shape extends Record<string, Schema<unknown, boolean>>>(shape: Shape, what: string) {
  return strictObject(shape, `a mapping (${what}) with the fields ${Object.keys(shape).join(', ')}`);
}

const upstream = section({
  address: remote('kms.example.com:5696'),
  ca: filePath('the PEM file of the CA(s) that sign the KMIP server certificate'),
  cert: filePath("the PEM file of the agent's client certificate"),
  key: filePath("the PEM file of the client certificate's private key"),
  serverName: text('the host name to verify in the server certificate').optional(),
}, 'the upstream KMIP server');

const mqtt = section({
  url: text('mqtt://HOST[:PORT] or mqtts://HOST[:PORT]').refine((value) => MQTT_URL.test(value), 'mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (e.g. mqtts://broker.local:8883)').optional(),
  prefix: text('a topic prefix without wildcards, e.g. kmip-edge').refine((value) => !/[#+]/.test(value), 'a topic prefix without wildcards (+, #)').default('kmip-edge'),
  username: text('the MQTT user name of the agent').optional(),
  passwordFile: filePath('a file holding the MQTT password (its first line)').optional(),
  ca: filePath('the PEM file of the CA that signs the broker certificate').optional(),
  cert: filePath('the PEM file of a client certificate for the broker').optional(),
  key: filePath("the PEM file of that client certificate's private key").optional(),
  clientId: text('an MQTT client id').optional(),
}, 'the MQTT broker of the devices');

const pushListener = section({
  listen: listen('0.0.0.0:5697'),
  cert: filePath("the PEM file of the listener's certificate"),
  key: filePath("the PEM file of the listener certificate's private key"),
  ca: filePath("the PEM file of the CA the upstream's certificate chains to"),
  peerCert: filePath("the PEM file of the upstream's certificate, pinned").optional(),
  peerName: text("the host name the upstream's certificate must be valid for").optional(),
  ciphers: text('an OpenSSL TLS 1.2 cipher list, for old key servers (default: ECDHE with AES-GCM or ChaCha20-Poly1305)').optional(),
}, 'the Put/Notify listener');

const kmip = section({
  listen: listen('0.0.0.0:5696'),
  cert: filePath("the PEM file of the KMIP endpoint's certificate"),
  key: filePath("the PEM file of the KMIP endpoint certificate's private key"),
  ca: filePath("the PEM file of the CA(s) the local KMIP clients' certificates chain to"),
  ciphers: text('an OpenSSL cipher list, for old KMIP clients (default: ECDHE with AES-GCM or ChaCha20-Poly1305, then the KMIP Basic Authentication Suite AES-CBC-SHA256)').optional(),
}, 'the local KMIP endpoint for tape libraries and storage arrays');

const nonceMac = section({
  defaultKey: text('the Unique Identifier of the upstream HMAC-SHA256 key used for every key').optional(),
  perKey: record(text('a key Unique Identifier'), text('the Unique Identifier of an HMAC-SHA256 key'), 'a mapping of key Unique Identifier to MAC key Unique Identifier').default({}),
}, 'nonce-MAC cache fills');

const metrics = section({
  listen: listen('127.0.0.1:9464'),
}, 'the Prometheus endpoint');

export const agentConfigSchema = section({
  data: filePath("the agent's data folder (created if missing)"),
  logLevel: oneOf(LOG_LEVELS, `one of ${LOG_LEVELS.join(', ')}`).default('info'),
  upstream,
  mqtt: mqtt.optional(),
  embeddedBroker: listen('127.0.0.1:1883').optional(),
  serial: list(filePath('a serial device, e.g. /dev/ttyUSB0'), 'a list of serial device paths').default([]),
  pushListener: pushListener.optional(),
  kmip: kmip.optional(),
  nonceMac: nonceMac.optional(),
  metrics: metrics.optional(),
}, 'the agent configuration').rules((config, problem) => {
  // Rules across fields: each issue names the field the operator has to change.
  const url = config.mqtt?.url;
  // Something to serve: devices (a transport), or local KMIP clients (a tape library site may have no devices).
  if (url === undefined && config.embeddedBroker === undefined && config.serial.length === 0 && config.kmip === undefined) {
    problem(['mqtt', 'url'], 'a device transport: mqtt.url (--mqtt), embeddedBroker (--embedded-broker) or serial (--serial); or the local KMIP endpoint, kmip.listen (--kmip-listen)');
  }
  if (url !== undefined && config.embeddedBroker !== undefined) problem(['embeddedBroker'], 'not both: mqtt.url names an external broker, embeddedBroker starts one');
  for (const field of ['username', 'passwordFile', 'ca', 'cert', 'key', 'clientId'] as const) {
    if (config.mqtt?.[field] !== undefined && url === undefined) problem(['mqtt', field], 'only with mqtt.url (the embedded broker has no login or TLS)');
  }
  if (url?.startsWith('mqtt://')) {
    for (const field of ['ca', 'cert', 'key'] as const) if (config.mqtt?.[field] !== undefined) problem(['mqtt', field], 'only with an mqtts:// URL');
  }
  if ((config.mqtt?.cert === undefined) !== (config.mqtt?.key === undefined)) problem(['mqtt', config.mqtt?.cert === undefined ? 'cert' : 'key'], 'mqtt.cert and mqtt.key together');
  if (config.mqtt?.passwordFile !== undefined && config.mqtt.username === undefined) problem(['mqtt', 'username'], 'a user name with mqtt.passwordFile');
  if (config.pushListener?.peerCert !== undefined && config.pushListener.peerName !== undefined) problem(['pushListener', 'peerName'], 'not both pushListener.peerCert and pushListener.peerName: one way to recognise the upstream');
});

/** The effective configuration: what `run` wires and `config check` prints. */
export type AgentConfig = Output<typeof agentConfigSchema>;
