/**
 * `kmip-edge demo` on a real pseudo-terminal (tmux, 120×40): the live panel is drawn in place —
 * upstream state, keys with allocation and lease, devices with their last request, pushes, the
 * event tail — and follows the story (the upstream shown OFFLINE while the key server is cut);
 * Ctrl-C (tmux send-keys C-c) stops everything cleanly: exit 0, the summary on the normal screen,
 * no process left, the temporary folder gone.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/cli.ts';

const TMUX = '/usr/bin/tmux';
const socket = `kmip-edge-demo-test-${process.pid}`;
const tmux = (...args: string[]): string => execFileSync(TMUX, ['-L', socket, ...args], { encoding: 'utf8', timeout: 10_000 });
const screen = (): string => tmux('capture-pane', '-p', '-t', 'demo');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls the screen until `test` holds, for at most `seconds`. */
async function waitForScreen(what: string, test: (text: string) => boolean, seconds = 60): Promise<string> {
  const deadline = Date.now() + seconds * 1000;
  let text = screen();
  while (!test(text)) {
    if (Date.now() > deadline) assert.fail(`the screen never showed ${what}; it shows:\n${text}`);
    await sleep(100);
    text = screen();
  }
  return text;
}

describe('kmip-edge demo on a terminal', () => {
  it('shows the live panel redrawn in place, follows the story, and stops cleanly on Ctrl-C', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-demo-tty-'));
    const log = join(dir, 'events.jsonl');
    // bash waits for the demo through Ctrl-C (it exits on its own), then says how it ended and stays:
    // the pane keeps what the demo printed last (with remain-on-exit, tmux 3.3 may drop a dying pane's last bytes).
    tmux('new-session', '-d', '-s', 'demo', '-x', '120', '-y', '40', '-c', ROOT, `bash -c '"$0" dist/kmip-edge.mjs demo --events ${log} --pace 150; echo "demo exited with $?"; sleep 300' ${process.execPath}`);
    try {
      const panel = await waitForScreen('the live panel', (t) => /tape-drive-7 +aes-256-gcm/.test(t) && /sensor-1 +chacha20-poly1305/.test(t) && /tape-key +Active/.test(t));
      for (const heading of [/^kmip-edge demo — /, /^upstream  (ONLINE|OFFLINE) since \d\d:\d\d:\d\d  key server 127\.0\.0\.1:\d+/m, /^mqtt      connected  embedded broker/m,
        /^keys +state +lease until +allocated +granted +remaining$/m, /^devices +suite +last request +at +pushes in +result$/m, /^pushes from the key server$/m, /^events$/m, /Ctrl-C stops the demo/]) {
        assert.match(panel, heading);
      }
      assert.equal(panel.split('\n').length, 41, 'one screen: 40 lines (and the final newline)'); // redrawn in place, not scrolled
      const offline = await waitForScreen('the upstream OFFLINE while the key server is cut', (t) => /^upstream  OFFLINE since .*\(link cut\)/m.test(t));
      assert.match(offline, /Put Replace of \S+ by \S+: acknowledged by the agent, relayed to the device and acknowledged/);
      assert.match(offline, /Notify of \S+: acknowledged by the agent/);
      assert.match(offline, /^kmip-edge demo — /, 'still drawn from the top');
      const after = await waitForScreen('the stages complete', (t) => t.includes('stages complete; the tape drive keeps encrypting'));
      assert.match(after, /^upstream  ONLINE since/m);
      assert.match(after, /refills resumed/);
      assert.match(after, /^tape-drive-7 .* allocate 1024 .* served/m);

      const ready = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as { event: string; pid?: number; dir?: string }).find((e) => e.event === 'ready')!;
      assert.ok(existsSync(ready.dir!));
      tmux('send-keys', '-t', 'demo', 'C-c');
      const final = await waitForScreen('the demo ending after Ctrl-C', (t) => /demo exited with \d+/.test(t), 30);
      assert.match(final, /^demo complete: keys, encrypt, put-replace, notify, offline, online; stopped by signal\ndemo exited with 0$/m);
      assert.doesNotMatch(final, /^events$/m, 'the live view is gone: back on the normal screen');
      assert.throws(() => process.kill(ready.pid!, 0), { code: 'ESRCH' }, `the demo's process ${ready.pid} is left`);
      // nothing else of it is left either: no process but the waiting bash has this run's event log on its command line
      const left = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).split('\n').filter((line) => line.includes(log) && !line.includes('bash -c'));
      assert.deepEqual(left, []);
      assert.equal(existsSync(ready.dir!), false, 'the temporary folder is removed');
    } finally {
      try {
        tmux('kill-server');
      } catch {
        // already gone
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
