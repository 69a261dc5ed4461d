/** A real pty pair from socat, standing in for a serial cable between the agent and a device. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export async function startPtyPair(): Promise<{ agentEnd: string; deviceEnd: string; stop(): void }> {
  if (!existsSync('/usr/bin/socat')) throw new Error('socat is not installed: run sudo scripts/install-peers.sh (Debian socat)');
  const child = spawn('/usr/bin/socat', ['-d', '-d', 'pty,raw,echo=0', 'pty,raw,echo=0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const ends: string[] = [];
  await new Promise<void>((resolve, reject) => {
    let text = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      for (const match of text.matchAll(/PTY is (\/dev\/pts\/\d+)/g)) if (!ends.includes(match[1]!)) ends.push(match[1]!);
      if (ends.length === 2 && /starting data transfer loop/.test(text)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`socat exited ${code}: ${text}`)));
  });
  return { agentEnd: ends[0]!, deviceEnd: ends[1]!, stop: () => void child.kill('SIGTERM') };
}
