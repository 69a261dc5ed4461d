/**
 * A real Mosquitto broker on a free loopback port, with a generated configuration — or a given
 * one (`config`, e.g. the shipped deploy/mosquitto.conf with its ports and paths substituted).
 * `kill()` ends it at once (SIGKILL, as a crash or power cut would) and `start()` brings it back
 * on the same port with the same configuration.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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

/**
 * Started as root, Mosquitto runs as user mosquitto, which then reads its password, ACL and
 * certificate files and writes its persistence file: they are the broker's, as in a real
 * deployment (a folder made with mkdtemp is 0700).
 */
export function ownedByBroker(...paths: string[]): void {
  if (process.getuid?.() !== 0) return;
  const uid = Number(execFileSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' }));
  const gid = Number(execFileSync('id', ['-g', 'mosquitto'], { encoding: 'utf8' }));
  for (const path of paths) chownSync(path, uid, gid);
}

const DEPLOY = new URL('../../deploy/', import.meta.url).pathname;

/**
 * Mosquitto with the shipped deploy/mosquitto.conf and deploy/mosquitto.acl: the port and the
 * file paths substituted, nothing else changed (each substitution must match, and no other line
 * differs); the password file made by mosquitto_passwd for `users` (name → password).
 */
export async function startDeployedMosquitto(users: Record<string, string>): Promise<Mosquitto & { shipped: string; used: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-mosquitto-deploy-'));
  const passwd = join(dir, 'kmip-edge.passwd');
  const acl = join(dir, 'kmip-edge.acl');
  copyFileSync(join(DEPLOY, 'mosquitto.acl'), acl);
  for (const [user, password] of Object.entries(users)) {
    execFileSync('/usr/bin/mosquitto_passwd', [...(existsSync(passwd) ? [] : ['-c']), '-b', passwd, user, password], { stdio: 'ignore' });
  }
  chmodSync(passwd, 0o600);
  ownedByBroker(dir, passwd, acl);
  const shipped = readFileSync(join(DEPLOY, 'mosquitto.conf'), 'utf8');
  let used = '';
  const broker = await startMosquitto({
    dir,
    config: (port) => {
      const substitutions: [string, string][] = [
        ['listener 1883 127.0.0.1', `listener ${port} 127.0.0.1`],
        ['/etc/mosquitto/kmip-edge.passwd', passwd],
        ['/etc/mosquitto/kmip-edge.acl', acl],
        ['persistence_location /var/lib/mosquitto/', `persistence_location ${dir}/`],
      ];
      used = shipped;
      for (const [from, to] of substitutions) {
        if (!used.includes(from)) throw new Error(`deploy/mosquitto.conf no longer has ${JSON.stringify(from)}`);
        used = used.split(from).join(to);
      }
      const before = shipped.split('\n');
      const after = used.split('\n');
      if (before.length !== after.length) throw new Error('substitution changed the number of lines');
      before.forEach((line, i) => {
        if (line !== after[i] && !substitutions.some(([from]) => line.includes(from))) throw new Error(`line ${i + 1} changed beyond its paths and port: ${line}`);
      });
      return used;
    },
  });
  return Object.assign(broker, { shipped, used });
}
