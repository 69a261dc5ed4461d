import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The kmip-edge package folder, found from this module whether it runs from src/ or a dist/ bundle. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'kmip-edge') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('kmip-edge package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}
