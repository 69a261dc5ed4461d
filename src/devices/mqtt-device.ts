/** A device on MQTT (PROTOCOL.md §6): publishes to its up topic, hears its down topic. */
import type { MqttClient } from 'mqtt';
import type { DeviceClient } from './device-client.ts';
import { DeviceRequester } from './device-requester.ts';
import { frameOf, payloadOf } from './mqtt-transport.ts';

export const MqttDevice = {
  async attach(client: MqttClient, device: DeviceClient, prefix = 'kmip-edge'): Promise<DeviceRequester> {
    const upTopic = `${prefix}/${device.id}/up`;
    const requester = new DeviceRequester(device, (frame) => client.publish(upTopic, payloadOf(frame), { qos: 1 }));
    client.on('message', (_topic, payload) => requester.deliver(frameOf(payload)));
    await new Promise<void>((resolve, reject) => client.subscribe(`${prefix}/${device.id}/down`, { qos: 1 }, (error) => (error ? reject(error) : resolve())));
    return requester;
  },
};
