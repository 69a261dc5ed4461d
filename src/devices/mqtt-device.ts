/** A device on MQTT (PROTOCOL.md §6): publishes to its up topic, hears its down topic. */
import type { MqttClient } from 'mqtt';
import { KmipEdgeError } from '../errors.ts';
import type { DeviceClient } from './device-client.ts';
import { DeviceRequester } from './device-requester.ts';
import { frameOf, payloadOf } from './mqtt-transport.ts';

export const MqttDevice = {
  /** Resolves once subscribed to the device's down topic; a refused subscription (the broker's ACL) rejects, `MQTT_SUBSCRIBE_REFUSED`. */
  async attach(client: MqttClient, device: DeviceClient, prefix = 'kmip-edge'): Promise<DeviceRequester> {
    const upTopic = `${prefix}/${device.id}/up`;
    const downTopic = `${prefix}/${device.id}/down`;
    const requester = new DeviceRequester(device, (frame) => client.publish(upTopic, payloadOf(frame), { qos: 1 }));
    client.on('message', (topic, payload) => topic === downTopic && requester.deliver(frameOf(payload)));
    await new Promise<void>((resolve, reject) => client.subscribe(downTopic, { qos: 1 }, (error, granted) => {
      const refused = granted?.find((grant) => grant.qos >= 0x80);
      if (error) reject(error);
      else if (refused) reject(new KmipEdgeError('MQTT_SUBSCRIBE_REFUSED', `the broker refused the subscription to ${downTopic} (reason code ${refused.qos}): check its ACL for this user`));
      else resolve();
    }));
    return requester;
  },
};
