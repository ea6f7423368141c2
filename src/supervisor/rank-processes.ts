/**
 * The local stand-in for Kubernetes' StatefulSet under `bbn train --workers W`: keeps one
 * `bbn worker --temporal` process per rank alive, restarts a rank that dies (the workflow
 * restarts the epoch from the last checkpoint on the replacement), follows `scale` (`ensure`),
 * and gives up on a rank that keeps dying, naming it and the tail of its log.
 *
 * It also replaces a rank that is alive but frozen (SIGSTOP, a main thread that stopped turning):
 * each rank announces its health endpoint (`health http://…/healthz`, served by its main thread,
 * which never computes), the supervisor probes it every second, and a rank that has not answered
 * for {@link FROZEN_AFTER_MS} is named `frozen`, SIGKILLed by PID and replaced. Every loss (frozen
 * or exited) is reported through `onLost` at once, so the run's workflow can restart the
 * generation without waiting for Temporal's heartbeat timeout.
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
  /** A rank was lost (its process exited, or it was frozen and has been killed); it is being replaced. */
  readonly onLost?: (loss: RankLoss) => void;
  /**
   * A rank was scaled away by `ensure` (told to stop; it is then no member of any generation):
   * `remaining` ranks are wanted. Said when decided, not when the process has exited, so a run
   * that ends meanwhile still announces it.
   */
  readonly onRetired?: (rank: number, remaining: number) => void;
}

/** A lost rank, as the supervisor saw it. */
export interface RankLoss {
  readonly rank: number;
  readonly pid: number | undefined;
  readonly cause: 'frozen' | 'exited';
  /** For people: "frozen: no answer from its health endpoint for 3.0 s" / "exited with code 1". */
  readonly detail: string;
  /** Milliseconds from the last sign of life to the verdict (frozen), or 0 (exited). */
  readonly detectedAfterMs: number;
}

/** Health probe period, and the bound on one probe's answer. */
const PROBE_EVERY_MS = 1_000;
/**
 * A rank whose health endpoint has not answered for this long is frozen. Its main thread only
 * serves gRPC, heartbeats and this endpoint (compute runs on its own thread), so 3 s of silence
 * is not a busy rank; with the 1 s probe period the verdict lands within about 4 s of the freeze.
 */
export const FROZEN_AFTER_MS = 3_000;
/** The line a rank prints once its health endpoint listens. */
const HEALTH_LINE = /\bhealth (http:\/\/\S+\/healthz)\b/;

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
  /** The current child's health endpoint, once announced. */
  health?: string;
  /** When the current child last answered its health probe (or announced it). */
  lastAlive: number;
  /** Probes of the current child that failed (timed out or refused) since its last answer. */
  missed: number;
  /** A probe is in flight (probes never overlap). */
  probing: boolean;
  /** Set once the current child was judged lost (its exit is then not reported again). */
  lost: boolean;
}

/** Rank processes kept alive; `failed` rejects when one gave up. */
export class RankProcesses {
  private readonly slots = new Map<number, Slot>();
  private closed = false;
  private fail: (err: Error) => void = () => {};
  /** Rejects with a {@link RankGaveUpError} when a rank exhausted its restarts; never resolves. */
  readonly failed: Promise<never>;

  /** Probes every rank's health endpoint; unref'd, so it never keeps the process alive. */
  private readonly prober: NodeJS.Timeout;
  /** When `tick` last ran: a supervisor that was itself stalled judges nobody on its next tick. */
  private lastTick = performance.now();

  constructor(private readonly opts: RankProcessesOptions) {
    this.failed = new Promise<never>((_, reject) => {
      this.fail = reject;
    });
    this.failed.catch(() => {}); // observed by whoever awaits it
    this.prober = setInterval(() => this.tick(performance.now()), PROBE_EVERY_MS);
    this.prober.unref();
  }

  /**
   * One round of liveness checks (the interval calls it; tests may too): probes each announced
   * health endpoint, and kills and reports a rank silent for {@link FROZEN_AFTER_MS}.
   */
  tick(now: number): void {
    // If this process did not run for two periods, the ranks' answers may be sitting unread:
    // silence measured across that gap says nothing about them, so their clocks restart.
    const stalled = now - this.lastTick > 2 * PROBE_EVERY_MS;
    this.lastTick = now;
    for (const [rank, slot] of this.slots) {
      if (!slot.health || slot.lost || slot.child.exit || !slot.wanted) continue;
      if (stalled) {
        slot.lastAlive = now;
        slot.missed = 0;
      }
      const silentMs = now - slot.lastAlive;
      // Frozen: silent for the bound, and at least two of our own probes went unanswered in it.
      if (silentMs >= FROZEN_AFTER_MS && slot.missed >= 2) {
        this.frozen(rank, slot, silentMs);
        continue;
      }
      if (slot.probing) continue;
      slot.probing = true;
      const child = slot.child;
      fetch(slot.health, { signal: AbortSignal.timeout(PROBE_EVERY_MS) })
        .then(async (res) => {
          await res.body?.cancel();
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          if (slot.child === child) {
            slot.lastAlive = performance.now();
            slot.missed = 0;
          }
        })
        .catch(() => {
          if (slot.child === child) slot.missed++;
        })
        .finally(() => {
          slot.probing = false;
        });
    }
  }

  private frozen(rank: number, slot: Slot, silentMs: number): void {
    slot.lost = true;
    const pid = slot.child.proc.pid;
    const detail = `frozen: no answer from its health endpoint for ${(silentMs / 1000).toFixed(1)} s (pid ${pid}); killed and replaced`;
    this.opts.onLine?.(rank, `rank ${rank} ${detail}`, 'stderr');
    slot.child.proc.kill('SIGKILL');
    this.opts.onLost?.({ rank, pid, cause: 'frozen', detail, detectedAfterMs: silentMs });
  }

  /** Keeps ranks 0..count-1 running and stops the others. */
  ensure(count: number): void {
    for (let rank = 0; rank < count; rank++) {
      const slot = this.slots.get(rank);
      if (!slot) this.slots.set(rank, this.newSlot(rank));
      else slot.wanted = true;
    }
    const retired: number[] = [];
    for (const [rank, slot] of this.slots) {
      if (rank >= count && slot.wanted) {
        slot.wanted = false;
        clearTimeout(slot.timer);
        slot.child.proc.kill('SIGTERM');
        retired.push(rank);
      }
    }
    for (const rank of retired) this.opts.onRetired?.(rank, count);
  }

  /** Stops every rank (SIGTERM, then SIGKILL after a grace) and waits for them. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.prober);
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

  private newSlot(rank: number): Slot {
    const slot: Slot = {
      child: undefined as unknown as LineChild,
      restarts: 0,
      wanted: true,
      lastAlive: 0,
      missed: 0,
      probing: false,
      lost: false,
    };
    this.spawnInto(rank, slot);
    return slot;
  }

  /** Starts rank `rank`'s process in `slot` (first start or replacement). */
  private spawnInto(rank: number, slot: Slot): void {
    const [command, ...args] = this.opts.command(rank);
    slot.health = undefined;
    slot.lost = false;
    const child = spawnLineChild(command, args, (line, stream) => {
      const announced = slot.child === child && !slot.health ? HEALTH_LINE.exec(line) : null;
      if (announced) {
        slot.health = announced[1];
        slot.lastAlive = performance.now();
        slot.missed = 0;
      }
      this.opts.onLine?.(rank, line, stream);
    });
    slot.child = child;
    child.exited.then(() => this.exited(rank, child));
    this.opts.onSpawn?.(rank, child.proc);
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
    if (!slot.lost) {
      const detail = `${describeExit(child.exit)}; restarting it`;
      this.opts.onLine?.(rank, `rank ${rank} ${detail}`, 'stderr');
      this.opts.onLost?.({ rank, pid: child.proc.pid, cause: 'exited', detail, detectedAfterMs: 0 });
    }
    slot.timer = setTimeout(() => {
      if (!this.closed && slot.wanted) this.spawnInto(rank, slot);
    }, this.opts.restartDelayMs ?? 1_000);
  }
}
