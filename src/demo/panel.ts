/**
 * The demo's live view on a terminal: one frame of text lines, drawn in place with plain ANSI
 * escapes (no terminal library: the bundle budget, and nothing here needs more than colour and
 * "home, clear"). Its source is what `kmip-edge status` answers (the agent's own state), the
 * simulated devices' last requests, the pushes, and the tail of the event log.
 */
import { isoTime } from '../iso-time.ts';
import type { AgentStatus } from '../cli/status-command.ts';
import type { DeviceActivity } from './gateway.ts';
import { STAGES, type DemoEvent } from './stages.ts';

export interface PanelState {
  status: AgentStatus | undefined;
  linkCut: boolean;
  kmsAddress: string;
  brokerAddress: string;
  devices: DeviceActivity[];
  pushes: { what: string; acknowledged: boolean; relayed: boolean | undefined; at: number }[];
  events: { at: number; event: DemoEvent }[];
  stage: string;
  startedAt: number;
  footer: string;
}

const bold = (s: string) => `\x1b[1m${s}\x1b[22m`;
const dim = (s: string) => `\x1b[2m${s}\x1b[22m`;
const green = (s: string) => `\x1b[32m${s}\x1b[39m`;
const red = (s: string) => `\x1b[31m${s}\x1b[39m`;
const yellow = (s: string) => `\x1b[33m${s}\x1b[39m`;
const clock = (ms: number) => isoTime(ms).slice(11, 19);
const pad = (s: string, n: number) => (s.length >= n ? s.slice(0, n) : s + ' '.repeat(n - s.length));
const visible = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

/** Cuts a line to `width` visible columns, keeping its escapes (and resetting them at the cut). */
function fit(line: string, width: number): string {
  if (visible(line).length <= width) return line;
  let out = '';
  let shown = 0;
  for (let i = 0; i < line.length && shown < width - 1; i++) {
    const escape = /^\x1b\[[0-9;?]*[A-Za-z]/.exec(line.slice(i));
    if (escape) {
      out += escape[0];
      i += escape[0].length - 1;
    } else {
      out += line[i];
      shown++;
    }
  }
  return out + '…\x1b[0m';
}

export function renderPanel(state: PanelState, width: number, height: number): string[] {
  const s = state.status;
  const lines: string[] = [];
  const stageNo = STAGES.indexOf(state.stage as (typeof STAGES)[number]);
  lines.push(`${bold('kmip-edge demo')} — key server, gateway agent and two devices on this machine   ${dim(`stage ${stageNo >= 0 ? `${stageNo + 1}/${STAGES.length} ` : ''}${state.stage}, ${((Date.now() - state.startedAt) / 1000).toFixed(0)} s`)}`);
  lines.push('');
  const up = s?.upstream;
  const upText = up === undefined ? dim('…') : up.state === 'online' ? green('ONLINE') : red('OFFLINE');
  lines.push(`${bold('upstream')}  ${upText}${up ? ` since ${clock(Date.parse(up.since))}` : ''}  key server ${state.kmsAddress} ${state.linkCut ? red('(link cut)') : dim('(mutual TLS)')}${up?.lastError ? dim(`  last failure ${clock(Date.parse(up.lastError.at))}: ${up.lastError.reason}`) : ''}`);
  lines.push(`${bold('mqtt')}      ${s?.mqtt?.connected ? green('connected') : yellow('disconnected')}  embedded broker ${state.brokerAddress}`);
  lines.push('');
  lines.push(bold(`${pad('keys', 38)}${pad('state', 11)}${pad('lease until', 13)}${pad('allocated', 11)}${pad('granted', 11)}remaining`));
  for (const k of s?.keys ?? []) {
    const name = `${k.uniqueIdentifier.slice(0, 24)} ${k.names.join(',') || '-'}`;
    const remaining = k.remaining === null ? '-' : String(k.remaining);
    lines.push(`${pad(name, 38)}${pad(k.state, 11)}${pad(k.leaseExpiresAt ? clock(Date.parse(k.leaseExpiresAt)) : 'unlimited', 13)}${pad(k.allocatedFromUpstream === null ? '-' : String(k.allocatedFromUpstream), 11)}${pad(k.grantedToDevices === null ? '-' : String(k.grantedToDevices), 11)}${k.remaining !== null && k.remaining < 4096 ? yellow(remaining) : remaining}`);
  }
  lines.push('');
  lines.push(bold(`${pad('devices', 15)}${pad('suite', 19)}${pad('last request', 27)}${pad('at', 10)}${pad('pushes in', 10)}result`));
  for (const d of state.devices) {
    const seen = s?.devices.find((x) => x.id === d.id);
    const result = d.lastResult.startsWith('served') ? green(d.lastResult) : d.lastResult === '-' ? d.lastResult : red(d.lastResult);
    lines.push(`${pad(d.id, 15)}${pad(seen?.suite ?? '', 19)}${pad(d.lastRequest, 27)}${pad(d.at ? clock(d.at) : '-', 10)}${pad(`${d.pushesReceived}${seen?.pendingPushes ? ` +${seen.pendingPushes}` : ''}`, 10)}${result}`);
  }
  lines.push('');
  lines.push(bold('pushes from the key server'));
  if (state.pushes.length === 0) lines.push(dim('  none yet'));
  for (const p of state.pushes.slice(-3)) lines.push(`  ${clock(p.at)} ${p.what}: ${p.acknowledged ? green('acknowledged by the agent') : red('not acknowledged')}${p.relayed === undefined ? '' : p.relayed ? ', relayed to the device and acknowledged' : red(', not relayed')}`);
  lines.push('');
  lines.push(bold('events'));
  const room = Math.max(3, height - lines.length - 2);
  for (const { at, event } of state.events.slice(-room)) lines.push(`  ${dim(clock(at))} ${event.event === 'stage' ? bold(event.text) : event.text}`);
  while (lines.length < height - 1) lines.push('');
  lines.length = Math.min(lines.length, height - 1);
  lines.push(dim(state.footer));
  return lines.map((line) => fit(line, width));
}
