/**
 * Counting and logging of device frames the agent drops (PROTOCOL.md §4: a frame that fails
 * authentication is dropped silently towards the sender, counted and logged here). A flood of
 * bad frames must not become a flood of log lines (issue #13 finding 8: 5,000 unknown ids wrote
 * 835 KB): the first drop of a reason in an interval is logged at once, the others of the interval
 * are counted and reported in one line when the interval ends ("suppressed": n). Every drop is
 * counted, and `onDrop` hears each one — the hook for metrics (frames rejected by reason).
 */
import type { Logger } from '../log.ts';

/** One log line per reason per this long, at most. */
export const DROP_LOG_INTERVAL_MS = 10_000;

/** Called for every frame dropped, with its reason code and the device named, if any. */
export type DropListener = (code: string, deviceId: string | undefined) => void;

export class DropLog {
  /** Frames dropped since start, by reason code (never their content). */
  readonly counts = new Map<string, number>();
  /** Drops of each reason since its last log line, and the devices they named last. */
  private readonly suppressed = new Map<string, { count: number; lastDevice: string | undefined }>();
  private readonly loggedAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  onDrop: DropListener | undefined;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = DROP_LOG_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts a drop; logs it unless a line for the same reason was written within the interval. */
  drop(code: string, deviceId?: string, level: 'warn' | 'debug' = 'warn'): void {
    this.counts.set(code, (this.counts.get(code) ?? 0) + 1);
    try {
      this.onDrop?.(code, deviceId);
    } catch (error) {
      this.log.error({ reason: (error as Error).message }, 'a drop listener failed');
    }
    const at = this.now();
    const last = this.loggedAt.get(code);
    if (last === undefined || at - last >= this.intervalMs) {
      this.loggedAt.set(code, at);
      this.log[level]({ event: 'device_frame_dropped', code, device: deviceId }, 'device frame dropped');
      return;
    }
    const pending = this.suppressed.get(code);
    if (pending) {
      pending.count++;
      pending.lastDevice = deviceId;
    } else this.suppressed.set(code, { count: 1, lastDevice: deviceId });
    this.timer ??= setTimeout(() => this.report(), Math.max(1, this.intervalMs - (at - last))).unref();
  }

  /** Writes the lines for drops held back (at the end of an interval, and on close). */
  report(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const at = this.now();
    for (const [code, { count, lastDevice }] of this.suppressed) {
      this.loggedAt.set(code, at);
      this.log.warn({ event: 'device_frame_dropped', code, suppressed: count, lastDevice, total: this.counts.get(code) }, 'device frames dropped (summarized)');
    }
    this.suppressed.clear();
  }

  close(): void {
    this.report();
  }
}
