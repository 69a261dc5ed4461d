/**
 * A local admin socket (Unix domain, owner only): one JSON request line per connection, answered
 * by one JSON line, then the connection ends. The development server's `push` command and the
 * agent's device provisioning (`kmip-edge device …` while `run` holds the store) and its
 * read-only questions (`kmip-edge status`, `ledger`, `cache`) use it.
 */
import { chmodSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';

/** A connection with no complete request line after this long is dropped. */
const IDLE_MS = 10_000;

/**
 * Listens on `path` (a stale socket file is replaced); `answer` gets each request line and
 * returns what to send back. A request longer than `maxRequestBytes` drops the connection.
 */
export async function serveJsonLines(path: string, answer: (line: string) => Promise<unknown>, maxRequestBytes: number): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer((socket) => {
    let buffered = '';
    let answered = false;
    // A client that never finishes its line does not hold a connection for ever.
    socket.setTimeout(IDLE_MS, () => socket.destroy());
    socket.on('data', (chunk) => {
      if (answered) return; // one request per connection
      buffered += chunk.toString('utf8');
      if (buffered.length > maxRequestBytes) return void socket.destroy();
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      answered = true;
      socket.setTimeout(0); // the answer may take a while (a large ledger)
      // `answer` should not reject; if it does, the client sees the connection end without an answer.
      answer(buffered.slice(0, newline)).then((reply) => socket.end(JSON.stringify(reply) + '\n'), () => socket.destroy());
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

/** Sends `request` to the socket at `path`; resolves with the answer's text, rejects with the socket's error. */
export function requestJsonLine(path: string, request: unknown): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path, () => socket.write(JSON.stringify(request) + '\n'));
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('utf8')));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}
