/**
 * `kmip-edge demo [--seconds S] [--events FILE] [--keep DIR] [--pace MS] [--plain]` (README command 1,
 * `npm start`): the whole gateway on one machine on embedded defaults (../demo/gateway.ts) playing
 * its story (../demo/stages.ts): keys fetched (one with end-to-end nonce-MAC), a tape drive
 * encrypting in chunks that draw usage allocations, a Put Replace and a Notify from the key
 * server, the key server cut (offline serving, allocations draining) and back (refills resume).
 *
 * On a terminal: a live view redrawn in place (../demo/panel.ts) until Ctrl-C (the tape drive
 * keeps encrypting after the stages) or --seconds. Not on a terminal (or --plain): the same
 * stages as plain lines, ending by itself after the last one. --events FILE: every event as a
 * JSON line. --keep DIR: the setup lives in DIR and stays up after the stages, with the commands
 * to talk to it printed, until Ctrl-C or SIGTERM. Exit 0 when every stage had its effect, 1 when
 * one did not (or --seconds ran out first), 2 for a usage error.
 */
import { isoTime } from '../iso-time.ts';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startGateway, type Gateway } from '../demo/gateway.ts';
import { renderPanel, type PanelState } from '../demo/panel.ts';
import { DemoRun, STAGES, type DemoEvent } from '../demo/stages.ts';
import { UsageError } from './errors.ts';

/** The bound off a terminal without --seconds or --keep. */
const DEFAULT_PLAIN_SECONDS = 120;

function positiveNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} needs a positive number of ${flag === '--pace' ? 'milliseconds' : 'seconds'}, not ${JSON.stringify(value)}`);
  return n;
}

/** --keep DIR: a new or empty folder (a second demo in the same folder would find the first's devices). */
function keepFolder(path: string): string {
  const dir = resolve(path);
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new UsageError(`--keep ${path}: not a folder; give a new or empty folder`);
    if (readdirSync(dir).length > 0) throw new UsageError(`--keep ${path}: the folder is not empty; give a new or empty folder (or remove it first)`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function keepCommands(gw: Gateway, tapeKey: string): string {
  const agent = join(gw.dir, 'agent');
  const kms = join(gw.dir, 'kms');
  return [
    `the demo keeps running in ${gw.dir} (pid ${process.pid}); Ctrl-C or kill ${process.pid} stops it. Talk to it:`,
    `  kmip-edge status --data ${agent}`,
    `  kmip-edge ledger --data ${agent}`,
    `  kmip-edge cache --data ${agent}`,
    `  (umask 077; kmip-edge device add --data ${agent} --id my-sensor --key-uid ${gw.keys.sensor} > my-sensor.json)   # it prints the device key: owner-only file`,
    `  (umask 077; node -e 'process.stdout.write(require("./my-sensor.json").key)' > my-sensor.key)`,
    `  kmip-edge device-sim --id my-sensor --key-file my-sensor.key --mqtt mqtt://127.0.0.1:${gw.brokerPort} get --uid ${gw.keys.sensor}`,
    `  kmip-edge kmip get-attributes --server 127.0.0.1:${gw.kmsPort} --ca ${kms}/ca.pem --cert ${kms}/client.pem --key ${kms}/client.key --uid ${tapeKey}   # the key server itself`,
    '',
  ].join('\n');
}

export async function runDemo(args: string[], out: (text: string) => void): Promise<number> {
  const { values } = parseArgs({
    args, strict: true,
    options: { seconds: { type: 'string' }, events: { type: 'string' }, keep: { type: 'string' }, pace: { type: 'string' }, plain: { type: 'boolean', default: false } },
  });
  let live = process.stdout.isTTY === true && !values.plain;
  // Bounded by default off a terminal (CI): the stages take seconds; a hang must not hold a pipeline.
  const seconds = positiveNumber(values.seconds, '--seconds') ?? (live || values.keep !== undefined ? undefined : DEFAULT_PLAIN_SECONDS);
  const pace = positiveNumber(values.pace, '--pace') ?? (live ? 700 : 60);
  // Ctrl-C / SIGTERM / --seconds: stop the story, then everything, cleanly.
  const abort = new AbortController();
  let why: 'signal' | 'time' | undefined;
  const stop = (reason: 'signal' | 'time') => () => {
    why ??= reason;
    abort.abort();
  };
  const onSignal = stop('signal');
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const timer = seconds === undefined ? undefined : setTimeout(stop('time'), seconds * 1000);
  const eventsFile = values.events === undefined ? undefined : resolve(values.events);
  let keep: string | undefined;
  let dir: string;
  try {
    if (eventsFile !== undefined) {
      try {
        writeFileSync(eventsFile, '', { mode: 0o600 });
      } catch (error) {
        throw new UsageError(`--events ${values.events}: cannot write it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
    }
    keep = values.keep === undefined ? undefined : keepFolder(values.keep);
    dir = keep ?? mkdtempSync(join(tmpdir(), 'kmip-edge-demo-'));
  } catch (error) {
    clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    throw error;
  }
  const stopped = new Promise<void>((done) => abort.signal.addEventListener('abort', () => done(), { once: true }));

  const startedAt = Date.now();
  const state: PanelState = { status: undefined, linkCut: false, kmsAddress: '', brokerAddress: '', devices: [], pushes: [], events: [], stage: 'setup', startedAt, footer: 'Ctrl-C stops the demo' };
  const stagesSeen = new Set<string>();
  const emit = (event: DemoEvent): void => {
    const at = Date.now();
    if (event.event === 'stage') stagesSeen.add(event.stage);
    state.stage = event.stage;
    state.events.push({ at, event });
    if (state.events.length > 200) state.events.shift();
    if (event.event === 'put') state.pushes.push({ what: `Put Replace of ${String(event.old)} by ${String(event.new)}`, acknowledged: event.acknowledged === true, relayed: event.relayed === true, at });
    if (event.event === 'notify') state.pushes.push({ what: `Notify of ${String(event.uid)}`, acknowledged: event.acknowledged === true, relayed: undefined, at });
    if (eventsFile !== undefined) appendFileSync(eventsFile, JSON.stringify({ t: isoTime(at), ...event }) + '\n');
    if (!live) out(event.event === 'stage' ? `${event.text}\n` : `  ${event.text}\n`);
  };

  // The live view: redrawn in place on the alternate screen, restored on the way out.
  let gw: Gateway | undefined;
  let drawing: NodeJS.Timeout | undefined;
  let busy = false;
  const draw = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      if (gw) {
        state.status = await gw.status().catch(() => state.status);
        state.linkCut = gw.link.isCut;
      }
      if (drawing === undefined) return; // the view was left while the status was asked for
      const lines = renderPanel(state, process.stdout.columns || 100, process.stdout.rows || 40);
      process.stdout.write('\x1b[H' + lines.map((line) => line + '\x1b[K').join('\n') + '\x1b[J');
    } finally {
      busy = false;
    }
  };
  if (live) {
    process.stdout.write('\x1b[?1049h\x1b[?25l');
    drawing = setInterval(() => void draw().catch(() => undefined), 250);
  } else {
    out('kmip-edge demo — key server, gateway agent and two devices on this machine\n');
  }

  let run: DemoRun | undefined;
  let completed = false;
  let failure: string | undefined;
  try {
    // A Ctrl-C during setup waits for it (a few seconds) so that everything it started is closed and its folder removed.
    gw = await startGateway(dir).catch((error: unknown) => void (failure = `the setup failed: ${(error as Error).message.split('\n')[0]}`));
    if (gw && !abort.signal.aborted) {
      state.kmsAddress = `127.0.0.1:${gw.kmsPort}`;
      state.brokerAddress = `127.0.0.1:${gw.brokerPort}`;
      state.devices = [gw.tape.activity, gw.sensor.activity];
      emit({ stage: 'setup', event: 'ready', text: `key server (development KMIP server) on 127.0.0.1:${gw.kmsPort}, mutual TLS; agent store in ${join(dir, 'agent')}; embedded MQTT broker on 127.0.0.1:${gw.brokerPort}; Put/Notify listener on 127.0.0.1:${gw.pushPort}; devices tape-drive-7 (AES-256-GCM) and sensor-1 (ChaCha20-Poly1305)`, pid: process.pid, dir, kms: gw.kmsPort, broker: gw.brokerPort, pushListener: gw.pushPort, keys: gw.keys });
      run = new DemoRun(gw, emit, pace, abort.signal);
      const story = run.run().then(() => void (completed = true));
      story.catch(() => undefined); // an abort or failure is read below
      await Promise.race([story, stopped]).catch((error: unknown) => {
        if (!abort.signal.aborted) failure = (error as Error).message;
      });
      if (completed && run.problems.length === 0) {
        if (keep !== undefined) {
          if (live) {
            // the commands must stay readable: leave the live view for plain text
            clearInterval(drawing);
            drawing = undefined;
            process.stdout.write('\x1b[?25h\x1b[?1049l');
            live = false;
          }
          out(keepCommands(gw, run.tapeKey));
        } else if (live) state.footer = 'stages complete; the tape drive keeps encrypting — Ctrl-C stops the demo';
        if (keep !== undefined || live) {
          // Stay up: on a terminal the tape drive keeps drawing chunks so the view stays alive.
          while (!abort.signal.aborted) {
            if (live) await run.chunk('online').catch(() => undefined);
            await sleep(pace * 2, undefined, { signal: abort.signal }).catch(() => undefined);
          }
        }
      }
      // Let an in-flight request finish (bounded) before the parts close under it.
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([story.catch(() => undefined), new Promise((done) => (grace = setTimeout(done, 2000)))]);
      clearTimeout(grace);
    }
  } finally {
    clearTimeout(timer);
    clearInterval(drawing);
    drawing = undefined;
    await gw?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (live) process.stdout.write('\x1b[?25h\x1b[?1049l');
    if (keep === undefined) rmSync(dir, { recursive: true, force: true });
  }
  const problems = [...(run?.problems ?? []), ...(failure ? [failure] : [])];
  const missing = STAGES.filter((stage) => !stagesSeen.has(stage) || (!completed && stage === state.stage));
  const ok = completed && problems.length === 0;
  const summary = ok ? `demo complete: ${STAGES.join(', ')}${why === 'signal' ? '; stopped by signal' : ''}`
    : problems.length > 0 ? `demo found a problem: ${problems.join('; ')}`
    : why === 'signal' ? `demo stopped by signal before it finished (${missing.join(', ')} not done)`
    : `demo stopped after ${seconds} s before it finished (${missing.join(', ')} not done)`;
  if (eventsFile !== undefined) appendFileSync(eventsFile, JSON.stringify({ t: isoTime(), stage: 'done', event: 'done', text: summary, ok, problems, stagesCompleted: STAGES.filter((s) => !missing.includes(s)) }) + '\n');
  out(summary + '\n');
  return ok || (why === 'signal' && problems.length === 0) ? 0 : 1;
}
