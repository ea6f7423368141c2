/**
 * The chaos loop's schedule, decided in pure code from a seed (the harness in loop.ts only acts on
 * it): which fault comes next, which rank it hits, and how the events are split into runs. The
 * same seed always gives the same schedule, printed before the loop starts, so a failure is
 * replayed by rerunning with its seed.
 *
 * Kinds are dealt from shuffled decks of all six, so every six events cover every kind and 100
 * events give each kind 16 or 17. A run takes events until it is full: at most `perRun` events,
 * at most `restartsPerRun` that cost the workflow a restart (a lost rank; the run's restart
 * budget is 5 with exponential backoff, so a run must not spend it all), and at most `scalesPerRun`
 * scale events (each waits for an epoch boundary).
 */
import { Rng } from '../../src/core/rng.ts';

/** What one event does to the run's processes. */
export type ChaosKind =
  | 'rank-kill'
  | 'rank-stop'
  | 'coordinator-kill'
  | 'temporal-kill'
  | 'nats-kill'
  | 'scale';

/** Every kind, in the order the table prints them. */
export const CHAOS_KINDS: readonly ChaosKind[] = [
  'rank-kill',
  'rank-stop',
  'coordinator-kill',
  'temporal-kill',
  'nats-kill',
  'scale',
];

/** Kinds whose recovery is a restart of the epoch by the workflow (a lost rank). */
export const RESTART_KINDS: ReadonlySet<ChaosKind> = new Set(['rank-kill', 'rank-stop']);

/** One scheduled event. */
export interface ChaosEvent {
  /** 0-based position in the whole schedule. */
  readonly index: number;
  readonly kind: ChaosKind;
  /** rank-kill / rank-stop: the rank hit (in the world the run has when the event comes). */
  readonly rank?: number;
  /** scale: the world size asked for. */
  readonly workers?: number;
}

/** The events of one run (a fresh run directory and run id, starting at `baseWorkers`). */
export interface ChaosRunPlan {
  readonly run: number;
  readonly events: readonly ChaosEvent[];
}

/** How the schedule is shaped. */
export interface ScheduleOptions {
  readonly events: number;
  readonly perRun: number;
  readonly restartsPerRun: number;
  readonly scalesPerRun: number;
  /** The world size every run starts with; scale events move between it and `maxWorkers`. */
  readonly baseWorkers: number;
  readonly maxWorkers: number;
}

/** The loop's shape: runs of up to 6 events, 3 lost ranks and 2 scale changes, worlds of 2 and 3. */
export const DEFAULT_SCHEDULE: Omit<ScheduleOptions, 'events'> = {
  perRun: 6,
  restartsPerRun: 3,
  scalesPerRun: 2,
  baseWorkers: 2,
  maxWorkers: 3,
};

/** The schedule of `opts.events` events for `seed`. */
export function chaosSchedule(seed: number, opts: ScheduleOptions): ChaosRunPlan[] {
  if (!Number.isInteger(opts.events) || opts.events < 0) {
    throw new RangeError(`chaos events (${opts.events}) must be an integer >= 0`);
  }
  if (opts.baseWorkers < 2 || opts.maxWorkers <= opts.baseWorkers) {
    throw new RangeError(
      `chaos worlds: baseWorkers (${opts.baseWorkers}) must be >= 2 and below maxWorkers (${opts.maxWorkers})`,
    );
  }
  const deck = Rng.fromSeed(seed).split('chaos-kinds');
  const targets = Rng.fromSeed(seed).split('chaos-targets');
  let hand: ChaosKind[] = [];
  const runs: { run: number; events: ChaosEvent[] }[] = [];
  let current: ChaosEvent[] = [];
  let world = opts.baseWorkers;
  const close = () => {
    if (current.length > 0) runs.push({ run: runs.length, events: current });
    current = [];
    world = opts.baseWorkers;
  };
  for (let index = 0; index < opts.events; index++) {
    if (hand.length === 0) hand = Array.from(deck.permutation(CHAOS_KINDS.length), (i) => CHAOS_KINDS[i]);
    const kind = hand.shift() as ChaosKind;
    const count = (pred: (e: ChaosEvent) => boolean) => current.filter(pred).length;
    const full =
      current.length >= opts.perRun ||
      (RESTART_KINDS.has(kind) && count((e) => RESTART_KINDS.has(e.kind)) >= opts.restartsPerRun) ||
      (kind === 'scale' && count((e) => e.kind === 'scale') >= opts.scalesPerRun);
    if (full) close();
    if (kind === 'scale') {
      world = world < opts.maxWorkers ? world + 1 : world - 1;
      current.push({ index, kind, workers: world });
    } else if (RESTART_KINDS.has(kind)) {
      current.push({ index, kind, rank: targets.int(world) });
    } else {
      current.push({ index, kind });
    }
  }
  close();
  return runs;
}

/** One line per event: `#3 run 0 rank-kill rank 1`, for the log (the schedule a seed gives). */
export function formatSchedule(seed: number, runs: readonly ChaosRunPlan[]): string {
  const lines = [
    `chaos schedule (seed ${seed}): ${runs.reduce((n, r) => n + r.events.length, 0)} events in ${runs.length} runs`,
  ];
  for (const r of runs) {
    for (const e of r.events) {
      const what =
        e.rank !== undefined ? ` rank ${e.rank}` : e.workers !== undefined ? ` to ${e.workers} workers` : '';
      lines.push(`  #${e.index} run ${r.run} ${e.kind}${what}`);
    }
  }
  return lines.join('\n');
}
