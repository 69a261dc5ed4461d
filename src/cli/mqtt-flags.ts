/**
 * The broker flags `run` and `device-sim` share (CLI.md "Added in wave 2"): parseArgs options,
 * their help text, and the mapping onto `MqttSettings` (src/devices/mqtt-options.ts), which a
 * configuration file maps onto the same way.
 */
import type { MqttSettings } from '../devices/mqtt-options.ts';

export const MQTT_FLAG_OPTIONS = {
  'mqtt-username': { type: 'string' },
  'mqtt-password-file': { type: 'string' },
  'mqtt-ca': { type: 'string' },
  'mqtt-cert': { type: 'string' },
  'mqtt-key': { type: 'string' },
  'mqtt-client-id': { type: 'string' },
} as const;

export const MQTT_FLAGS_HELP = `  --mqtt mqtt://HOST[:PORT] | mqtts://HOST[:PORT]   the broker (default ports 1883, 8883)
  --mqtt-username U            log in to the broker as U
  --mqtt-password-file F       the password: the first line of file F (never on the command line)
  --mqtt-ca F                  mqtts: PEM CA(s) for the broker's certificate (default: Node's root CAs);
                               the broker's chain and host name are always verified
  --mqtt-cert F --mqtt-key F   mqtts: a client certificate and its key, for brokers that ask for one
  --mqtt-client-id ID          the MQTT client id`;

type MqttFlagValues = { [K in keyof typeof MQTT_FLAG_OPTIONS]?: string | undefined };

/** The flags' values as settings for `url` (files are read by resolveMqttSettings). */
export function mqttSettingsFromFlags(url: string, values: MqttFlagValues): MqttSettings {
  return {
    url,
    ...(values['mqtt-username'] !== undefined && { username: values['mqtt-username'] }),
    ...(values['mqtt-password-file'] !== undefined && { passwordFile: values['mqtt-password-file'] }),
    ...(values['mqtt-ca'] !== undefined && { ca: values['mqtt-ca'] }),
    ...(values['mqtt-cert'] !== undefined && { cert: values['mqtt-cert'] }),
    ...(values['mqtt-key'] !== undefined && { key: values['mqtt-key'] }),
    ...(values['mqtt-client-id'] !== undefined && { clientId: values['mqtt-client-id'] }),
  };
}

/** The first of the flags that was given, if any (they need --mqtt). */
export function givenMqttFlag(values: MqttFlagValues): string | undefined {
  return (Object.keys(MQTT_FLAG_OPTIONS) as (keyof typeof MQTT_FLAG_OPTIONS)[]).find((flag) => values[flag] !== undefined);
}
