/**
 * The serial binding (firmware-bridge/PROTOCOL.md §6): SLIP-framed frames with a CRC-32 over a
 * serial line (serialport). The decoder resynchronizes after line noise and never buffers more
 * than one maximal packet; each reply goes back on the same line.
 */
import type { SerialPort } from 'serialport';
import { KmipEdgeError } from '../errors.ts';
import { SlipDecoder, slipEncode } from './slip.ts';

/** A frame from the line; `send` writes a frame back on that line (replies, relayed pushes). */
export type SerialFrameHandler = (frame: Uint8Array, send: (frame: Uint8Array) => void) => Promise<Uint8Array | undefined>;

export class SerialLine {
  readonly decoder = new SlipDecoder();
  /** The last error the port reported, if any. */
  lastError: Error | undefined;

  private constructor(private readonly port: SerialPort) {}

  /**
   * Opens `path`; every complete frame is passed to `onFrame`. serialport (native, and its
   * bindings for every platform: ~50 ms to load) is loaded on the first line opened, so that an
   * agent without a serial line never pays for it (issue #15 footprint).
   */
  static async open(path: string, onFrame: (frame: Uint8Array) => void, baudRate = 115_200): Promise<SerialLine> {
    const { SerialPort } = await import('serialport');
    return new Promise((resolve, reject) => {
      const port = new SerialPort({ path, baudRate, autoOpen: false });
      const line = new SerialLine(port);
      port.on('data', (chunk: Buffer) => {
        for (const frame of line.decoder.push(chunk)) onFrame(frame);
      });
      // A write or read error on the line (unplugged adapter, pty gone) must not end the process
      // (an 'error' event without a listener throws): the line is noted as failed; the next frame's
      // reply cannot go out, the device resends.
      port.on('error', (error) => (line.lastError = error));
      port.open((error) => (error ? reject(new KmipEdgeError('SERIAL_OPEN_FAILED', `cannot open ${path}: ${error.message}`, { cause: error })) : resolve(line)));
    });
  }

  send(frame: Uint8Array): void {
    if (!this.port.isOpen) return; // closed or failed: the device resends once the line is back
    this.port.write(Buffer.from(slipEncode(frame)));
  }

  /** Bytes as they are, unframed (line diagnostics and noise tests). */
  sendRaw(bytes: Uint8Array): void {
    this.port.write(Buffer.from(bytes));
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.port.isOpen ? this.port.close(() => resolve()) : resolve()));
  }
}

/** The agent on a serial line: frames in, replies out, through the device service. */
export async function startSerialTransport(path: string, handle: SerialFrameHandler, baudRate?: number): Promise<SerialLine> {
  const line: SerialLine = await SerialLine.open(path, (frame) => {
    const send = (out: Uint8Array) => line.send(out);
    void handle(frame, send).then((reply) => reply && send(reply));
  }, baudRate);
  return line;
}
