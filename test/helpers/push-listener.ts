/** A KMIP client's Put/Notify listener for tests: mutual TLS, records each request, answers. */
import { createServer, type Server } from 'node:tls';
import { buildResponseMessage, parseRequestMessage, type RequestMessage } from '../../src/kmip/message.ts';
import { ResultReason, ResultStatus } from '../../src/kmip/tables.generated.ts';
import { decodeTtlv } from '../../src/ttlv/decode.ts';
import { encodeTtlv } from '../../src/ttlv/encode.ts';
import { TtlvFramer } from '../../src/ttlv/framer.ts';

export class PushListener {
  readonly received: RequestMessage[] = [];
  readonly raw: Uint8Array[] = [];
  mode: 'ack' | 'refuse' = 'ack';
  private server: Server | undefined;
  private taken = 0;

  constructor(private readonly identity: { ca: Buffer; cert: Buffer; key: Buffer }) {}

  async listen(port = 0): Promise<number> {
    this.server = createServer({ ...this.identity, requestCert: true, rejectUnauthorized: true }, (socket) => {
      const framer = new TtlvFramer();
      socket.on('error', () => socket.destroy());
      socket.on('data', (chunk: Buffer) => {
        for (const message of framer.push(chunk)) {
          const request = parseRequestMessage(decodeTtlv(message));
          this.raw.push(message);
          this.received.push(request);
          const operation = request.batchItems[0]!.operation;
          const item = this.mode === 'ack'
            ? { operation, resultStatus: ResultStatus.Success, payload: [] }
            : { operation, resultStatus: ResultStatus.OperationFailed, resultReason: ResultReason.GeneralFailure };
          socket.write(encodeTtlv(buildResponseMessage(request.protocolVersion, [item])));
        }
      });
    });
    // A port taken meanwhile (EADDRINUSE) is a rejection here, not an uncaught error and a listen that never ends.
    await new Promise<void>((resolve, reject) => this.server!.once('error', reject).listen(port, '127.0.0.1', () => {
      this.server!.off('error', reject);
      resolve();
    }));
    return (this.server.address() as { port: number }).port;
  }

  /** The next message not yet taken, waiting up to `ms` for it. */
  async next(ms = 3000): Promise<Uint8Array | undefined> {
    const deadline = Date.now() + ms;
    while (this.raw.length <= this.taken && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    return this.raw.length > this.taken ? this.raw[this.taken++] : undefined;
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
