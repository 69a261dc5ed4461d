/**
 * A listening socket that cannot be opened is an operator error (issue #12 §3): one line naming
 * the field (flag or configuration path), the address and why — never a stack trace.
 */
import { ConfigError } from './config-error.ts';

function errno(error: unknown): string | undefined {
  for (let at: unknown = error; at instanceof Error; at = at.cause) {
    const code = (at as NodeJS.ErrnoException).code;
    if (code !== undefined && /^E[A-Z]+$/.test(code)) return code;
  }
  return undefined;
}

const WHY: Record<string, string> = {
  EADDRINUSE: 'the address is already in use (another process listens there); stop it or choose another port',
  EACCES: 'permission denied (ports below 1024 need privileges); choose a port above 1023',
  EADDRNOTAVAIL: 'no network interface of this machine has that address',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name does not resolve (name service unreachable)',
};

/** Runs `start`; a bind failure becomes ConfigError('CONFIG_LISTEN') naming `field` and `address`. */
export async function listening<T>(field: string, address: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (error) {
    const code = errno(error);
    const why = code === undefined ? undefined : WHY[code];
    if (why === undefined) throw error;
    throw new ConfigError('CONFIG_LISTEN', [`${field} ${address}: ${why}`], { cause: error });
  }
}
