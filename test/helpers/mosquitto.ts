/**
 * A real Mosquitto broker on a free loopback port, with a generated configuration — or a given
 * one (`config`, e.g. the shipped deploy/mosquitto.conf with its ports and paths substituted).
 * `kill()` ends it at once (SIGKILL, as a crash or power cut would) and `start()` brings it back
 * on the same port with the same configuration.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/bench/free-port.ts';

const MOSQUITTO = '/usr/sbin/mosquitto';

export interface Mosquitto {
  port: number;
  /** The folder holding its configuration (and whatever else the test puts there). */
  dir: string;
  /** What the broker wrote on stderr since it was last started. */
  readonly stderr: string;
  stop(): Promise<void>;
  /** SIGKILL: no goodbye to its clients. */
  kill(): Promise<void>;
  /** Starts it again (same port, same configuration) and resolves once it accepts connections. */
  start(): Promise<void>;
}

export interface MosquittoOptions {
  /** The configuration file's text for the port (default: anonymous access on loopback, no persistence). */
  config?: (port: number, dir: string) => string;
  /** A folder to use (default: a new temporary one). */
  dir?: string;
  /** The port (default: a free one). */
  port?: number;
}

function defaultConfig(port: number): string {
  return `listener ${port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nlog_dest stderr\nlog_type error\n`;
}

function accepting(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  if (!existsSync(MOSQUITTO)) throw new Error('Mosquitto is not installed: run sudo scripts/install-peers.sh (Debian mosquitto)');
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'kmip-edge-mosquitto-'));
  const port = options.port ?? (await freePort());
  const configFile = join(dir, 'mosquitto.conf');
  writeFileSync(configFile, (options.config ?? defaultConfig)(port, dir));
  let child: ChildProcess | undefined;
  let stderr = '';
  const stopWith = (signal: NodeJS.Signals) => new Promise<void>((resolve) => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return resolve();
    running.once('exit', () => resolve());
    running.kill(signal);
  });
  const start = async () => {
    stderr = '';
    const started = spawn(MOSQUITTO, ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = started;
    started.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (!(await accepting(port))) {
      if (started.exitCode !== null || Date.now() > deadline) throw new Error(`mosquitto did not start: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  await start();
  return {
    port,
    dir,
    get stderr() {
      return stderr;
    },
    stop: () => stopWith('SIGTERM'),
    kill: () => stopWith('SIGKILL'),
    start,
  };
}
