/**
 * A real small file system for disk-full tests: a tmpfs of `bytes` mounted on a fresh folder
 * (`mount -t tmpfs`, which needs root — as the tests and CI run here; without it the test fails,
 * it does not skip). `fill()` takes every free byte with a filler file, `free()` removes it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  dir: string;
  /** Fills the file system up (a filler file of every free byte); returns the bytes it took. */
  fill(): number;
  free(): void;
  freeBytes(): number;
  unmount(): void;
}

export function mountTmpfs(bytes: number): Tmpfs {
  const dir = mkdtempSync(join(tmpdir(), 'kmip-edge-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    throw new Error(`cannot mount a tmpfs on ${dir} (the disk-full tests need root): ${(error as { stderr?: Buffer }).stderr?.toString().trim() ?? error}`);
  }
  const filler = join(dir, 'filler');
  const freeBytes = () => {
    const { bavail, bsize } = statfsSync(dir);
    return bavail * bsize;
  };
  return {
    dir,
    freeBytes,
    fill() {
      let taken = 0;
      // Appending in pieces: a tmpfs refuses the piece that does not fit, with ENOSPC.
      for (let piece = 64 * 1024; piece >= 512; piece /= 2) {
        for (;;) {
          try {
            writeFileSync(filler, Buffer.alloc(piece), { flag: 'a' });
            taken += piece;
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
            break;
          }
        }
      }
      return taken;
    },
    free() {
      rmSync(filler, { force: true });
    },
    unmount() {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
