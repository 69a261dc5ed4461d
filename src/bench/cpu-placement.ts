/**
 * Where `bench devices` runs its processes. "split": the system under test — the agent (or the
 * echo responder) and the broker — on CPU 0, the load generator on the other CPUs, so that the
 * simulated devices' own work (sealing, opening, parsing: in life done by the devices) is not
 * taken from the system under test; the same for both sides of the comparison. "shared": every
 * process anywhere. Split needs Linux, 2 or more CPUs and `taskset` (util-linux).
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

export type PlacementKind = 'split' | 'shared';

export interface Placement {
  kind: PlacementKind;
  /** The command line to start a process of the system under test, or of the load generator. */
  command(role: 'underTest' | 'load', command: string, args: string[]): [string, string[]];
  /** Pins this process (all its threads) to the system under test's CPU; returns the undo. */
  pinSelf(): () => void;
}

const SHARED: Placement = { kind: 'shared', command: (_role, command, args) => [command, args], pinSelf: () => () => {} };

function tasksetWorks(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The placement asked for, or "shared" with the reason when "split" is not possible here. */
export function placement(kind: PlacementKind): { placement: Placement; note?: string } {
  if (kind === 'shared') return { placement: SHARED };
  const cpus = availableParallelism();
  if (process.platform !== 'linux' || cpus < 2) return { placement: SHARED, note: `split placement needs Linux and 2+ CPUs (here ${process.platform}, ${cpus})` };
  if (!tasksetWorks()) return { placement: SHARED, note: 'split placement needs taskset (util-linux)' };
  const cpuSet = { underTest: '0', load: `1-${cpus - 1}` };
  return {
    placement: {
      kind: 'split',
      command: (role, command, args) => ['taskset', ['-c', cpuSet[role], command, ...args]],
      pinSelf() {
        const before = execFileSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' }).trim().split(/\s+/).pop()!;
        execFileSync('taskset', ['-a', '-p', '-c', cpuSet.underTest, String(process.pid)], { stdio: 'ignore' });
        return () => execFileSync('taskset', ['-a', '-p', before, String(process.pid)], { stdio: 'ignore' });
      },
    },
  };
}
