import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = `${ROOT}dist/kmip-edge.mjs`;

/** Runs the built CLI (the artifact users get), as `npx kmip-edge` would. */
export function runCli(args: string[], input?: string | Buffer): { status: number | null; stdout: string; stderr: string } {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build (npm test does)`);
  const run = spawnSync(process.execPath, [BIN, ...args], { input, encoding: 'utf8', cwd: ROOT, timeout: 60_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}
