/**
 * The chaos loop: a seeded schedule (schedule.ts) of faults played on small real runs in the
 * chart's process layout (cluster.ts, run.ts). Each event is injected while the run's ranks are
 * stepping (read from the run's status, as the frozen-rank tests do), and the next one waits
 * until the run has recovered. Every run must complete with the final weights of an uninterrupted
 * run that trained each epoch on the same world size, bit for bit.
 *
 * Per kind, what the times measure (from the moment of injection):
 * - rank-kill (SIGKILL), rank-stop (SIGSTOP): detected when the workflow knows (its status names
 *   the loss, records a failure or moves to a new generation); a stopped rank is then SIGKILLed
 *   (the kubelet's liveness probe) and restarted. Recovered when the new generation's ranks all
 *   step.
 * - coordinator-kill, temporal-kill, nats-kill (SIGKILL): detected when the process is gone (what
 *   the kubelet sees; it then starts it again on the same port and state). Recovered when the
 *   run's status answers again and its ranks step beyond where they were (or in a new generation).
 * - scale (`bbn scale RUN W`, after the StatefulSet's new pod when scaling up): detected when the
 *   workflow accepted it (the command returned); recovered when all W ranks step at the next epoch
 *   boundary (then a pod scaled away is stopped).
 */
import type { ChildProcess } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { runCli } from '../../src/cli/cli.ts';
import { finalParams, tempDir } from '../distributed/fixtures.ts';
import { RestartableServer } from './cluster.ts';
import { ChaosRun, position, type RunContext, stepping } from './run.ts';
import {
  type ChaosEvent,
  type ChaosRunPlan,
  chaosSchedule,
  DEFAULT_SCHEDULE,
  formatSchedule,
} from './schedule.ts';
import type { ChaosRecord } from './table.ts';

/** Steps before an epoch's end within which no fault is injected (a scale must land at the next boundary). */
const MARGIN = 4;

/** What to play. */
export interface LoopOptions {
  readonly seed: number;
  readonly events: number;
  readonly configPath: string;
  /** Config overrides of every run (the run's size: epochs, images). */
  readonly overrides: readonly string[];
  readonly say: (line: string) => void;
}

/** One run of the loop, as it went. */
export interface RunOutcome {
  readonly runId: string;
  readonly events: number;
  /** World size of each epoch. */
  readonly worlds: readonly number[];
  readonly seconds: number;
  /** Final weights equal, bit for bit, to the uninterrupted run with the same world sizes. */
  readonly identical: boolean;
}

export interface LoopResult {
  readonly schedule: readonly ChaosRunPlan[];
  readonly records: readonly ChaosRecord[];
  readonly runs: readonly RunOutcome[];
  /** Uninterrupted runs trained for the comparison (one per distinct sequence of world sizes). */
  readonly references: number;
}

/** Plays `opts.events` events of the schedule of `opts.seed`; throws on a hang or a failed run. */
export async function chaosLoop(opts: LoopOptions): Promise<LoopResult> {
  const schedule = chaosSchedule(opts.seed, { ...DEFAULT_SCHEDULE, events: opts.events });
  for (const line of formatSchedule(opts.seed, schedule).split('\n')) opts.say(line);
  const children: ChildProcess[] = [];
  const temporal = await RestartableServer.start('temporal', tempDir('bbn-chaos-temporal-'));
  const nats = await RestartableServer.start('nats', tempDir('bbn-chaos-nats-'));
  const connection = await Connection.connect({ address: temporal.address });
  const ctx: RunContext = {
    temporal,
    nats,
    client: new Client({ connection }),
    configPath: opts.configPath,
    overrides: opts.overrides,
    children,
    say: opts.say,
  };
  const records: ChaosRecord[] = [];
  const runs: RunOutcome[] = [];
  const references = new Map<string, Float32Array>();
  const pending: ChaosEvent[][] = schedule.map((r) => [...r.events]);
  try {
    for (let n = 0; n < pending.length; n++) {
      const started = performance.now();
      const run = new ChaosRun(ctx, `chaos-${opts.seed}-${n}`, DEFAULT_SCHEDULE.baseWorkers);
      await run.start();
      try {
        const left = await playEvents(ctx, run, n, pending[n], records);
        // Events the run ended too early for go to a run of their own.
        if (left.length > 0) {
          opts.say(
            `run ${run.runId}: events ${left.map((e) => `#${e.index}`).join(' ')} carried to the next run`,
          );
          pending.push(left);
        }
        await run.finish();
      } catch (err) {
        await run.abort();
        throw err;
      }
      const worlds = await run.worldSizes();
      const key = worlds.join(',');
      if (!references.has(key))
        references.set(key, await referenceRun(ctx, `chaos-ref-${opts.seed}-${references.size}`, worlds));
      const identical = Buffer.from(finalParams(run.outDir).buffer).equals(
        Buffer.from((references.get(key) as Float32Array).buffer),
      );
      const seconds = (performance.now() - started) / 1000;
      runs.push({ runId: run.runId, events: pending[n].length - 0, worlds, seconds, identical });
      opts.say(
        `run ${run.runId}: completed in ${seconds.toFixed(1)} s, worlds ${key}, final weights ${identical ? 'bit-identical' : 'DIFFER'}`,
      );
    }
  } finally {
    await connection.close();
    await nats.stop();
    await temporal.stop();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  return { schedule, records, runs, references: references.size };
}

/** Plays `events` on `run` in order; returns the ones the run ended too early for. */
async function playEvents(
  ctx: RunContext,
  run: ChaosRun,
  n: number,
  events: readonly ChaosEvent[],
  records: ChaosRecord[],
): Promise<ChaosEvent[]> {
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    const ready = await run.until(`steps running for event #${e.index}`, (s, done) => {
      if (done) return true;
      return !!s && stepping(s) && position(s).step <= s.steps - MARGIN;
    });
    const s0 = ready.s;
    // Finished, or a scale in the last epoch (it would never land): the rest goes to a new run.
    if (ready.done || !s0 || (e.kind === 'scale' && s0.epoch >= s0.totalEpochs)) return events.slice(i);
    const record = await inject(ctx, run, n, e, s0);
    records.push(record);
    ctx.say(
      `#${e.index} ${e.kind} ${record.target} at ${record.at}: detected ${(record.detectMs / 1000).toFixed(1)} s, ` +
        `recovered ${(record.recoverMs / 1000).toFixed(1)} s, restarts ${record.restarts}`,
    );
  }
  return [];
}

type Status = NonNullable<Awaited<ReturnType<ChaosRun['status']>>>;

/** Injects one event on a stepping run and waits for its detection and the run's recovery. */
async function inject(
  ctx: RunContext,
  run: ChaosRun,
  n: number,
  e: ChaosEvent,
  s0: Status,
): Promise<ChaosRecord> {
  const g0 = s0.generation;
  const f0 = s0.failures.length;
  const p0 = position(s0);
  const at = `epoch ${p0.epoch} step ${p0.step}`;
  const t0 = performance.now();
  let target: string;
  let detectAt: number;
  /** Progress after the fault: a new generation stepping, or the same one further on. */
  let recovered = (s: Status) =>
    stepping(s) &&
    (s.generation > g0 ||
      position(s).epoch > p0.epoch ||
      (position(s).epoch === p0.epoch && position(s).step > p0.step));
  switch (e.kind) {
    case 'rank-kill':
    case 'rank-stop': {
      const rank = (e.rank ?? 0) % s0.workers;
      target = `rank ${rank}`;
      const pod = run.ranks[rank];
      await pod.signal(e.kind === 'rank-kill' ? 'SIGKILL' : 'SIGSTOP');
      const seen = await run.until(`the loss of rank ${rank} is known`, (s, done) =>
        done
          ? true
          : !!s && (s.generation > g0 || s.failures.length > f0 || !!s.lost?.some((l) => l.rank === rank)),
      );
      detectAt = seen.at;
      // The liveness probe's part: the frozen container is killed, and started again.
      if (e.kind === 'rank-stop') await pod.signal('SIGKILL');
      recovered = (s) => stepping(s) && s.generation > g0;
      break;
    }
    case 'coordinator-kill': {
      target = 'coordinator';
      await run.coordinator.signal('SIGKILL');
      detectAt = performance.now();
      break;
    }
    case 'temporal-kill':
    case 'nats-kill': {
      const server = e.kind === 'temporal-kill' ? ctx.temporal : ctx.nats;
      target = e.kind === 'temporal-kill' ? 'temporal server' : 'nats-server';
      await server.kill();
      detectAt = performance.now();
      await server.restart();
      break;
    }
    case 'scale': {
      const from = s0.workers;
      const to =
        e.workers !== undefined && e.workers !== from
          ? e.workers
          : from > DEFAULT_SCHEDULE.baseWorkers
            ? from - 1
            : from + 1;
      target = `${from} -> ${to} workers`;
      detectAt = await scale(ctx, run, to);
      recovered = (s) => stepping(s) && s.workers === to;
      break;
    }
  }
  const done = await run.until(
    `recovery from event #${e.index} (${e.kind})`,
    (s, fin) => fin || (!!s && recovered(s)),
  );
  if (e.kind === 'scale')
    while (run.ranks.length > (done.s?.workers ?? run.ranks.length)) await run.removeRank();
  return {
    index: e.index,
    run: n,
    kind: e.kind,
    target,
    at,
    detectMs: detectAt - t0,
    recoverMs: done.at - t0,
    restarts: (done.s?.failures.length ?? f0) - f0,
  };
}

/**
 * `bbn scale RUN to` as a user types it, after starting the new rank's pod when scaling up (the
 * StatefulSet's part); resolves when the workflow accepted it.
 */
async function scale(ctx: RunContext, run: ChaosRun, to: number): Promise<number> {
  while (run.ranks.length < to) run.addRank();
  // The real command line, parsed and run in this process (a process start would only add its own seconds).
  const code = await runCli([
    'node',
    'bbn',
    'scale',
    run.runId,
    String(to),
    '--temporal',
    ctx.temporal.address,
  ]);
  if (code !== 0) throw new Error(`bbn scale ${run.runId} ${to} exited ${code}`);
  return performance.now();
}

/**
 * The uninterrupted run the final weights of a chaos run are compared with: the same config, each
 * epoch on the same world size (scaled at the same epoch boundaries, with no fault).
 */
async function referenceRun(
  ctx: RunContext,
  runId: string,
  worlds: readonly number[],
): Promise<Float32Array> {
  const run = new ChaosRun(ctx, runId, worlds[0]);
  await run.start();
  try {
    for (let i = 1; i < worlds.length; i++) {
      if (worlds[i] === worlds[i - 1]) continue;
      // Epoch i trains on worlds[i - 1]; the change lands at its end (epochs are 1-based).
      await run.until(
        `reference: epoch ${i} stepping`,
        (s) => !!s && stepping(s) && s.epoch === i && position(s).step <= s.steps - MARGIN,
      );
      await scale(ctx, run, worlds[i]);
      await run.until(
        `reference: ${worlds[i]} workers stepping`,
        (s) => !!s && stepping(s) && s.workers === worlds[i],
      );
      while (run.ranks.length > worlds[i]) await run.removeRank();
    }
    await run.finish();
  } catch (err) {
    await run.abort();
    throw err;
  }
  const got = await run.worldSizes();
  if (got.join(',') !== worlds.join(',')) {
    throw new Error(`reference run ${runId} trained on worlds ${got.join(',')}, not ${worlds.join(',')}`);
  }
  ctx.say(`reference run ${runId}: worlds ${worlds.join(',')}, no faults`);
  return finalParams(run.outDir);
}
