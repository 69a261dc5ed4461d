/**
 * The data folder check before the agent opens its store (issue #12 §3): it must be a folder the
 * agent can write, created owner-only if missing. Folders are made one level at a time: Node's
 * recursive mkdir never returns on a file system that refuses folders with ENOENT (`/proc/...`,
 * `/sys/...`), so the agent hung there instead of saying why.
 */
import { closeSync, mkdirSync, openSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from './config-error.ts';

function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    case 'EROFS': return 'read-only file system';
    case 'ENOSPC': return 'no space left';
    case 'ENOTDIR': return 'a part of the path is a file';
    case 'ENOENT': return 'this file system does not allow folders here';
    default: return code ?? (error as Error).message;
  }
}

/** Makes `path` (and missing parents, 0700) a writable folder, or throws one ConfigError line naming `field`. */
export function prepareDataFolder(path: string, field: string): void {
  const fail = (problem: string, cause?: unknown): never => {
    throw new ConfigError('CONFIG_DATA', [`${field} ${path}: ${problem}`], { cause });
  };
  const absolute = resolve(path);
  const missing: string[] = [];
  for (let at = absolute; ; at = dirname(at)) {
    let isFolder: boolean;
    try {
      isFolder = statSync(at).isDirectory();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') fail(`cannot look at ${at} (${reason(error)})`, error);
      if (dirname(at) === at) fail('no such file system');
      missing.unshift(at);
      continue;
    }
    if (!isFolder) fail(at === absolute ? 'is a file, not a folder; give a folder for the agent\'s data' : `${at} is a file, not a folder`);
    break;
  }
  for (const folder of missing) {
    try {
      mkdirSync(folder, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') fail(`cannot create ${folder} (${reason(error)})`, error);
    }
  }
  // Permission bits do not tell (root, read-only mounts, ACLs): try writing.
  const probe = join(absolute, `.write-check-${process.pid}`);
  try {
    closeSync(openSync(probe, 'wx', 0o600));
    unlinkSync(probe);
  } catch (error) {
    fail(`cannot write in it (${reason(error)}); the agent keeps its store and master key there`, error);
  }
}
