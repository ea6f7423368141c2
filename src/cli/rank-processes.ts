/**
 * The local stand-in for Kubernetes' StatefulSet under `bbn train --workers W`: keeps one
 * `bbn worker --temporal` process per rank alive, restarts a rank that dies (the workflow
 * restarts the epoch from the last checkpoint on the replacement), follows `scale` (`ensure`),
 * and gives up on a rank that keeps dying, naming it and the tail of its log.
 */
import type { ChildProcess } from 'node:child_process';
import { describeExit, type LineChild, spawnLineChild } from './child-process.ts';

/** Options of {@link RankProcesses}. */
export interface RankProcessesOptions {
  /** Command and arguments of rank `rank`. */
  readonly command: (rank: number) => readonly string[];
  readonly onLine?: (rank: number, line: string, stream: 'stdout' | 'stderr') => void;
  /** Called after each spawn (tests inject faults through it). */
  readonly onSpawn?: (rank: number, child: ChildProcess) => void;
  /** Restarts allowed per rank; default 5. */
  readonly maxRestarts?: number;
  /** Delay before a restart; default 1 s. */
  readonly restartDelayMs?: number;
}

/** A rank that died more often than allowed. */
export class RankGaveUpError extends Error {
  override name = 'RankGaveUpError';
  readonly userFacing = true;
}

/** Grace between SIGTERM and SIGKILL when stopping ranks. */
const KILL_GRACE_MS = 5_000;

interface Slot {
  child: LineChild;
  restarts: number;
  wanted: boolean;
  timer?: NodeJS.Timeout;
}

/** Rank processes kept alive; `failed` rejects when one gave up. */
export class RankProcesses {
  private readonly slots = new Map<number, Slot>();
  private closed = false;
  private fail: (err: Error) => void = () => {};
  /** Rejects with a {@link RankGaveUpError} when a rank exhausted its restarts; never resolves. */
  readonly failed: Promise<never>;

  constructor(private readonly opts: RankProcessesOptions) {
    this.failed = new Promise<never>((_, reject) => {
      this.fail = reject;
    });
    this.failed.catch(() => {}); // observed by whoever awaits it
  }

  /** Keeps ranks 0..count-1 running and stops the others. */
  ensure(count: number): void {
    for (let rank = 0; rank < count; rank++) {
      const slot = this.slots.get(rank);
      if (!slot) this.slots.set(rank, { child: this.spawn(rank), restarts: 0, wanted: true });
      else slot.wanted = true;
    }
    for (const [rank, slot] of this.slots) {
      if (rank >= count && slot.wanted) {
        slot.wanted = false;
        clearTimeout(slot.timer);
        slot.child.proc.kill('SIGTERM');
      }
    }
  }

  /** Stops every rank (SIGTERM, then SIGKILL after a grace) and waits for them. */
  async close(): Promise<void> {
    this.closed = true;
    const slots = [...this.slots.values()];
    for (const s of slots) {
      clearTimeout(s.timer);
      if (!s.child.exit) s.child.proc.kill('SIGTERM');
    }
    const kill = setTimeout(() => {
      for (const s of slots) if (!s.child.exit) s.child.proc.kill('SIGKILL');
    }, KILL_GRACE_MS);
    await Promise.all(slots.map((s) => s.child.exited));
    clearTimeout(kill);
  }

  private spawn(rank: number): LineChild {
    const [command, ...args] = this.opts.command(rank);
    const child = spawnLineChild(command, args, (line, stream) => this.opts.onLine?.(rank, line, stream));
    child.exited.then(() => this.exited(rank, child));
    this.opts.onSpawn?.(rank, child.proc);
    return child;
  }

  private exited(rank: number, child: LineChild): void {
    const slot = this.slots.get(rank);
    if (!slot || slot.child !== child) return;
    if (this.closed || !slot.wanted) {
      this.slots.delete(rank);
      return;
    }
    if (slot.restarts >= (this.opts.maxRestarts ?? 5)) {
      this.fail(
        new RankGaveUpError(
          `worker rank ${rank} ${describeExit(child.exit)} after ${slot.restarts} restarts; giving up. Last lines:\n  ${child.tail.join('\n  ')}`,
        ),
      );
      return;
    }
    slot.restarts++;
    this.opts.onLine?.(rank, `rank ${rank} ${describeExit(child.exit)}; restarting it`, 'stderr');
    slot.timer = setTimeout(() => {
      if (!this.closed && slot.wanted) slot.child = this.spawn(rank);
    }, this.opts.restartDelayMs ?? 1_000);
  }
}
