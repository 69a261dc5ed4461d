/**
 * The agent process's last line of defence (issue #13 finding 1). Every transport and listener
 * callback handles its own failures (a device's frame, a peer's message, an operator's request
 * must never end the process); this catches what slipped through anyway, logs it with its
 * `event`, and decides by the kind of failure:
 *
 * - an **unhandled promise rejection** is a failed operation nobody was waiting for. Every state
 *   transition of the agent is one synced batch (ARCHITECTURE.md §5), so the failed operation left
 *   the before or the after state on disk, never half of it: logged at error level, counted, and
 *   the process keeps serving. (Node's default would exit on the first one — one bad request
 *   would take every device down.)
 * - an **uncaught exception** was thrown out of a callback with no handler: the stack it unwound
 *   may have left in-memory state (a lane, a counter block, a half-sent reply) inconsistent, and
 *   Node documents the process state as undefined afterwards. Logged at fatal level, then exit 70
 *   (EX_SOFTWARE) — non-zero, so systemd (`Restart=on-failure`) starts the agent again, which
 *   recovers from disk: nothing acknowledged is lost (synced first), resent frames are answered
 *   from the kept replies, pushes resume from the outbox.
 */
import type { Logger } from './log.ts';

/** Exit status after an uncaught exception (sysexits.h EX_SOFTWARE). */
export const EXIT_UNCAUGHT = 70;

export interface ProcessGuard {
  /** Unhandled rejections seen (and survived) since start. */
  readonly unhandledRejections: number;
  /** Removes the handlers (tests). */
  uninstall(): void;
}

function describe(error: unknown): { reason: string; code: string | undefined; stack: string | undefined } {
  const e = error as { message?: unknown; code?: unknown; stack?: unknown } | undefined;
  return {
    reason: typeof e?.message === 'string' ? e.message : String(error),
    code: typeof e?.code === 'string' ? e.code : undefined,
    stack: typeof e?.stack === 'string' ? e.stack : undefined,
  };
}

/** Installs the handlers on `process`; `exit` is process.exit unless given. */
export function guardProcess(log: Logger, exit: (code: number) => void = (code) => process.exit(code)): ProcessGuard {
  let rejections = 0;
  const onRejection = (reason: unknown): void => {
    rejections++;
    log.error({ event: 'unhandled_rejection', ...describe(reason), count: rejections }, 'an operation failed with nobody waiting for it: logged, the agent keeps serving');
  };
  const onException = (error: unknown): void => {
    log.fatal({ event: 'uncaught_exception', ...describe(error) }, `uncaught exception: exiting ${EXIT_UNCAUGHT} so that the service manager restarts the agent`);
    log.flush?.();
    exit(EXIT_UNCAUGHT);
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    get unhandledRejections() {
      return rejections;
    },
    uninstall() {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}
