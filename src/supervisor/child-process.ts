/**
 * A child process whose output is forwarded line by line (with the last lines kept for error
 * messages), and whose end is one promise that settles after its exit and its last line.
 *
 * Children (the local rank processes of `bbn train --workers`) run in a process group of their
 * own: the terminal's Ctrl-C reaches only `bbn`, which stops the run in order (through the
 * workflow, or by forwarding SIGINT itself) instead of every process dying at once. They still
 * never outlive us: a process 'exit' hook kills those left, and a watchdog (devservers/child.ts)
 * ends them when we die without hooks (SIGKILL, SIGTERM, the terminal's SIGHUP).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { spawnWatchdog } from '../devservers/child.ts';

/** How a child ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A spawned child. */
export interface LineChild {
  readonly proc: ChildProcess;
  /** Its last lines (stdout and stderr), oldest first. */
  readonly tail: string[];
  /** Set once it exited (or could not start). */
  exit?: ChildExit;
  /** Settles after the exit and the last forwarded line. */
  readonly exited: Promise<void>;
}

const TAIL_LINES = 20;

/** Children still running; the exit hook kills them. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const proc of live) proc.kill('SIGKILL');
  });
}

/** Spawns `command args`, forwarding each output line to `onLine`. */
export function spawnLineChild(
  command: string,
  args: readonly string[],
  onLine: (line: string, stream: 'stdout' | 'stderr') => void,
  env?: NodeJS.ProcessEnv,
): LineChild {
  installExitHook();
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env, detached: true });
  if (proc.pid !== undefined) {
    live.add(proc);
    const watchdog = spawnWatchdog(proc.pid);
    proc.once('exit', () => {
      live.delete(proc);
      watchdog.kill('SIGKILL');
    });
  }
  const tail: string[] = [];
  const forward = (stream: 'stdout' | 'stderr') => (line: string) => {
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    onLine(line, stream);
  };
  const out = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  const err = createInterface({ input: proc.stderr as NodeJS.ReadableStream });
  out.on('line', forward('stdout'));
  err.on('line', forward('stderr'));
  const closed = Promise.all([
    new Promise<void>((r) => out.once('close', r)),
    new Promise<void>((r) => err.once('close', r)),
  ]);
  const child: LineChild = {
    proc,
    tail,
    exited: new Promise<void>((r) => {
      proc.once('exit', (code, signal) => {
        child.exit = { code, signal };
        r();
      });
      proc.once('error', (e) => {
        child.exit = { code: null, signal: null };
        tail.push(`cannot start ${command}: ${e.message}`);
        r();
      });
    }).then(() => closed.then(() => {})),
  };
  return child;
}

/** "was killed by SIGKILL" / "exited with code 1". */
export function describeExit(exit: ChildExit | undefined): string {
  return exit?.signal ? `was killed by ${exit.signal}` : `exited with code ${exit?.code ?? 'unknown'}`;
}
