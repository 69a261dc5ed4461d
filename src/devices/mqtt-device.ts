/**
 * A device on MQTT (the simulator's core, and how firmware should behave): one request at a
 * time; if no reply comes, the *same* frame is sent again (same counter) until answered — so a
 * restarting agent or a broker hiccup exercises the agent's idempotency, never a double effect.
 */
import type { MqttClient } from 'mqtt';
import { KmipEdgeError } from '../errors.ts';
import type { ResponseMessage } from '../kmip/message.ts';
import type { DeviceClient } from './device-client.ts';
import { parseFrameHeader } from './frame.ts';

export class MqttDevice {
  private waiting: { counter: bigint; resolve: (reply: Uint8Array) => void } | undefined;

  private constructor(
    private readonly client: MqttClient,
    private readonly device: DeviceClient,
    private readonly prefix: string,
  ) {
    client.on('message', (_topic, payload) => {
      const reply = new Uint8Array(payload);
      try {
        const { header } = parseFrameHeader(reply);
        if (this.waiting && header.replyTo === this.waiting.counter) this.waiting.resolve(reply);
      } catch {
        // not a frame for us: ignore
      }
    });
  }

  static async attach(client: MqttClient, device: DeviceClient, prefix = 'kmip-edge'): Promise<MqttDevice> {
    await new Promise<void>((resolve, reject) => client.subscribe(`${prefix}/${device.id}/down`, { qos: 1 }, (error) => (error ? reject(error) : resolve())));
    return new MqttDevice(client, device, prefix);
  }

  /** Sends one KMIP request and returns the agent's response, resending until answered. */
  async request(message: Uint8Array, options: { resendMs?: number; deadlineMs?: number } = {}): Promise<ResponseMessage> {
    const { frame, counter } = this.device.seal(message);
    const deadline = Date.now() + (options.deadlineMs ?? 30_000);
    const reply = new Promise<Uint8Array>((resolve) => (this.waiting = { counter, resolve }));
    try {
      for (;;) {
        this.client.publish(`${this.prefix}/${this.device.id}/up`, Buffer.from(frame), { qos: 1 });
        let timer: NodeJS.Timeout | undefined;
        const answered = await Promise.race([reply, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), options.resendMs ?? 1000)))]);
        clearTimeout(timer);
        if (answered) return this.device.open(answered, counter);
        if (Date.now() > deadline) throw new KmipEdgeError('DEVICE_NO_ANSWER', `no answer to request ${counter} before the deadline`);
      }
    } finally {
      this.waiting = undefined;
    }
  }
}
