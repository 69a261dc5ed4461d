import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { KmipEdgeError } from '../errors.ts';

/**
 * Reads a file, or standard input for "-", refusing more than `maxBytes` before holding it all:
 * a file's size is checked first, standard input is read in chunks and cut off one byte over.
 */
export function readInputLimited(path: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = path === '-' ? 0 : openSync(path, 'r');
  } catch (error) {
    throw new KmipEdgeError('CLI_INPUT', `cannot open ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isFile() && stat.size > maxBytes) {
      throw new KmipEdgeError('CLI_INPUT', `${path} has ${stat.size} bytes, more than the limit of ${maxBytes}`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    const chunk = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') continue;
        if ((error as NodeJS.ErrnoException).code === 'EOF') break;
        throw error;
      }
      if (n === 0) break;
      total += n;
      if (total > maxBytes) throw new KmipEdgeError('CLI_INPUT', `input exceeds the limit of ${maxBytes} bytes`);
      chunks.push(Buffer.from(chunk.subarray(0, n)));
    }
    return Buffer.concat(chunks, total);
  } finally {
    if (path !== '-') closeSync(fd);
  }
}
