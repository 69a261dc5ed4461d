/**
 * Runs a kmip-edge command under test/process/report-at-exit.cjs and returns what the process had
 * loaded at exit (its native addons, what V8 did with the bundle's code cache) beside its output.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './cli.ts';

const PRELOAD = join(ROOT, 'test/process/report-at-exit.cjs');

/** Commands that open no store and talk to no peer (help, version, the codec, an operator error). */
export const STORELESS_COMMANDS = [['--version'], ['help'], ['ttlv', 'decode', '--hex', '42006A02000000040000000100000000'], ['run', '--no-such-flag']];

export interface ReportedRun {
  status: number | null;
  stdout: string;
  /** Without the report's line. */
  stderr: string;
  report: { nativeAddons: string[]; codeCache: string | null };
}

export function runReported(args: string[], options: { dist?: string; env?: NodeJS.ProcessEnv; nodeFlags?: string[] | undefined } = {}): ReportedRun {
  const command = join(options.dist ?? join(ROOT, 'dist'), 'kmip-edge.mjs');
  const child = spawnSync(process.execPath, [...(options.nodeFlags ?? []), '-r', PRELOAD, command, ...args], { encoding: 'utf8', timeout: 60_000, env: options.env ?? process.env });
  const line = /^process-report: (.*)$/m.exec(child.stderr);
  assert.ok(line, `the preload reported (exit ${child.status}): ${child.stderr}`);
  return { status: child.status, stdout: child.stdout, stderr: child.stderr.replace(`${line[0]}\n`, ''), report: JSON.parse(line[1]!) as ReportedRun['report'] };
}
