/**
 * The training side of one rank's Temporal worker process ({@link TrainingDeps}): the rank
 * runtime runs on a compute thread (`ComputeThread`, compute-entry.ts), for world size 1 (the
 * embedded local default) or as rank r of W, summing gradients with the peers over the gRPC ring
 * (`RankRing`; the coordinator's rendezvous gathers the ranks' addresses from their heartbeats). This main thread owns the ring,
 * the activity heartbeats and the stop vote, and stays free while a step computes, so cancel,
 * pause, status queries and telemetry answer at once. Data and model are loaded once per run and
 * kept across epochs; after a failure, a new generation (a failure, or a change of W) or a request
 * this process cannot continue, the thread reloads from the newest good checkpoint. Training is
 * deterministic from a checkpoint and the plan is world-size invariant, so the run ends with the
 * weights of an uninterrupted `runTraining`.
 */
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { AllreduceTag } from '../collective/index.ts';
import { ConfigError, parseRunConfig, type RunConfig } from '../core/config.ts';
import { epochSchedule } from '../core/epoch-schedule.ts';
import { totalEpochs } from '../core/methods.ts';
import { checkpointFileName, listCheckpoints } from '../worker/checkpoint.ts';
import { type ComputeInit, carriesStopVote } from '../worker/process/compute-protocol.ts';
import { ComputeThread, type EpochHandlers } from '../worker/process/compute-thread.ts';
import { type EpochMetrics, initRunDir, readMetrics, rewriteMetrics, runPaths } from '../worker/run-dir.ts';
import type { EpochResult, RankInfo, StepReport } from '../worker/trainer.ts';
import type { RankControl, TrainingDeps } from './activities.ts';
import { FAILURE_TYPES, type RunRef, type TrainRequest } from './api.ts';
import { recordedEpoch, summaryOf } from './epoch-record.ts';
import { RankRing, type RankRingOptions, StaleRendezvousError } from './rank-ring.ts';

/** Options of the local implementation. */
export interface LocalDepsOptions {
  /** Progress of this process's steps (e.g. the CLI's progress bar); must not throw. */
  readonly onStep?: (report: StepReport & { readonly allreduceBytes?: number }, epochs: number) => void;
  /** Rank 0's metrics row of each evaluated epoch, awaited before the activity returns; must not throw. */
  readonly onEpoch?: (row: EpochMetrics, epochs: number) => void | Promise<void>;
  /** Called when this process opens a run (its config, its place in the world, the backend its thread computes on, its run directory). */
  readonly onOpen?: (cfg: RunConfig, layout: RankInfo, backend: string, outDir: string) => void;
  /** Lines for people (which checkpoint a session resumed from, which were skipped). */
  readonly log?: (line: string) => void;
  /** Where this rank's ring peer server binds (used when W > 1). */
  readonly ring?: RankRingOptions;
  /** This node's backend choice over the run config's `compute` (`bbn worker --backend/--threads`). */
  readonly compute?: ComputeInit['compute'];
}

/**
 * After the workflow cancels a W > 1 epoch, the ranks agree to stop after one more step. A world
 * that has not agreed within this bound plus two step times has lost a rank (frozen or gone), so
 * the ring is aborted and the activity ends: survivors never wait on a dead peer for long.
 */
const STOP_GRACE_MS = 2_000;
/** Digest the parameters only at the end of an epoch (the workflow's replica check). */

/** One run's state in this process: the compute thread holds the model, this side the position. */
interface Session {
  readonly key: string;
  readonly cfg: RunConfig;
  readonly thread: ComputeThread;
  /** The backend the thread computes on (recorded in summary.json). */
  readonly backend: string;
  /** This session's place in the world (the trainer's shard); a new layout restarts the thread's trainer. */
  layout: RankInfo;
  /** Highest generation seen; requests of older generations are refused (fencing). */
  generation: number;
  /** Completed epochs and steps of the next that the thread's state holds. */
  epoch: number;
  step: number;
  /** False after an error mid-epoch or a generation change: reload from the checkpoint before use. */
  clean: boolean;
  last: EpochResult | undefined;
  readonly epochs: number;
}

function fail(type: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: type !== FAILURE_TYPES.positionLost });
}

/** The request's run config, parsed; a bad one is a non-retryable ConfigError failure. */
export function configOf(req: RunRef): RunConfig {
  try {
    return parseRunConfig(req.config, `run ${req.runId} config`);
  } catch (err) {
    if (err instanceof ConfigError) throw fail(FAILURE_TYPES.config, err.message);
    throw err;
  }
}

/**
 * Errors that a retry cannot fix, raised inside the compute thread (they cross as a WorkerError
 * carrying the original's name): a bad config or data set, a run directory that cannot be written,
 * no restorable checkpoint in a run that has some (never start over in it), a diverged step (the
 * same checkpoint diverges again).
 */
const NOT_RETRIED = new Set([
  'ConfigError',
  'DataError',
  'RunDirError',
  'CheckpointError',
  'DivergenceError',
]);

function asFailure(err: unknown): unknown {
  type Named = { name?: string; message?: string; cause?: Named } | undefined;
  for (const e of [err as Named, (err as Named)?.cause]) {
    if (e?.name === 'ReplicasDivergedError') return fail(FAILURE_TYPES.diverged, e.message ?? String(err));
    if (e?.name && NOT_RETRIED.has(e.name)) return fail(FAILURE_TYPES.config, e.message ?? String(err));
  }
  return err;
}

const sameLayout = (a: RankInfo, b: RankInfo) => a.rank === b.rank && a.worldSize === b.worldSize;

/**
 * This process's rank training dependencies, with its ring address (what its heartbeats tell the
 * coordinator); `dispose()` ends every run's compute thread and the ring. */
export function createLocalDeps(
  opts: LocalDepsOptions = {},
): TrainingDeps & { ringAddress(): Promise<string>; dispose(): Promise<void> } {
  const sessions = new Map<string, Session>();
  const started = new Map<string, number>();
  const rings = new RankRing(opts.ring);
  /** Rings already announced in the log (one line per ring: which data plane moves its chunks). */
  const announced = new WeakSet<object>();

  const drop = async (runId: string) => {
    const s = sessions.get(runId);
    sessions.delete(runId);
    await s?.thread.close();
  };

  /** Positions the thread's rank runtime at the run's newest good checkpoint (the seed's initial state if none). */
  const restart = async (s: Session, layout: RankInfo): Promise<void> => {
    const at = await s.thread
      .start({ rank: layout.rank, worldSize: layout.worldSize, checkpointUri: { latest: true } })
      .catch((err: unknown) => {
        throw asFailure(err);
      });
    for (const r of at.rejected) opts.log?.(`skipped bad checkpoint: ${r}`);
    if (at.resumed) opts.log?.(`resuming from ${at.path} (epoch ${at.epoch + 1} step ${at.step})`);
    s.layout = layout;
    s.epoch = at.epoch;
    s.step = at.step;
    s.clean = true;
    s.last = undefined;
  };

  /** A new session: its compute thread (backend, data, model from the seed), positioned by `restart`. */
  const open = async (req: RunRef, cfg: RunConfig, key: string, layout: RankInfo): Promise<Session> => {
    const { thread, ready } = await ComputeThread.open({
      cfg,
      outDir: req.outDir,
      compute: opts.compute,
    }).catch((err: unknown) => {
      throw asFailure(err);
    });
    const s: Session = {
      key,
      cfg,
      thread,
      backend: ready.backend,
      layout,
      generation: req.generation,
      epoch: 0,
      step: 0,
      clean: false,
      last: undefined,
      epochs: totalEpochs(cfg),
    };
    try {
      await restart(s, layout);
    } catch (err) {
      await thread.close();
      throw err;
    }
    // Registered only once positioned: a failed restore leaves nothing a retry could train on.
    sessions.set(req.runId, s);
    opts.onOpen?.(cfg, layout, ready.backend, req.outDir);
    return s;
  };

  /** The run's session, created on first use; checks the generation (fencing). */
  const session = async (req: RunRef, layout?: RankInfo): Promise<Session> => {
    const cfg = configOf(req);
    const key = `${req.outDir}\n${JSON.stringify(cfg)}`;
    let s = sessions.get(req.runId);
    if (s && s.key !== key) {
      await drop(req.runId);
      s = undefined;
    }
    if (!s) return open(req, cfg, key, layout ?? { rank: 0, worldSize: 1 });
    if (req.generation < s.generation) {
      throw fail(
        FAILURE_TYPES.staleGeneration,
        `run ${req.runId}: request of generation ${req.generation} refused, generation ${s.generation} is current`,
      );
    }
    if (req.generation > s.generation) {
      s.generation = req.generation;
      s.clean = false; // a new generation restarts from the last checkpoint
    }
    if (!s.clean) {
      if (s.thread.isBroken) {
        await drop(req.runId);
        return open(req, cfg, key, layout ?? s.layout);
      }
      await restart(s, layout ?? s.layout);
    }
    return s;
  };

  return {
    async prepareRun(req) {
      const cfg = configOf(req);
      const ckptDir = runPaths(req.outDir).checkpoints;
      if (!req.resume) {
        if (listCheckpoints(ckptDir).length > 0) {
          throw fail(
            FAILURE_TYPES.config,
            `outDir ${req.outDir} already holds checkpoints of a run; resume it, or choose another outDir`,
          );
        }
        await drop(req.runId);
      }
      started.set(req.runId, performance.now());
      // The session (data, model) before the run directory is written: data that cannot load leaves it as it was.
      const s = await session(req);
      try {
        if (req.resume) rewriteMetrics(req.outDir, readMetrics(req.outDir, s.epoch));
        else {
          initRunDir(req.outDir, cfg);
          rewriteMetrics(req.outDir, []);
        }
      } catch (err) {
        throw asFailure(err);
      }
      const latest = listCheckpoints(ckptDir).at(-1);
      return { startEpoch: s.epoch + 1, checkpoint: latest ? `${ckptDir}/${latest}` : null };
    },

    ringAddress: () => rings.address(),

    async trainEpochOnRank(req, ctl) {
      const layout = { rank: req.rank, worldSize: req.worldSize };
      const s = await session(req, layout);
      if (s.epoch !== req.epoch - 1 || !sameLayout(s.layout, layout)) await restart(s, layout);
      // The epoch was trained and recorded, but the process died before Temporal heard of it:
      // report it from the record instead of training it twice.
      const recorded = s.epoch === req.epoch && s.step === 0 ? recordedEpoch(req.outDir, req.epoch) : null;
      if (recorded) {
        return {
          epoch: req.epoch,
          rank: req.rank,
          steps: req.plan.steps,
          trainLoss: recorded.row.trainLoss,
          trainAccuracy: recorded.row.trainAccuracy,
          seconds: recorded.row.seconds,
          paramsDigest: await s.thread.digest(),
        };
      }
      if (s.epoch !== req.epoch - 1) {
        throw fail(
          FAILURE_TYPES.positionLost,
          `run ${req.runId}: the last checkpoint is at epoch ${s.epoch}, cannot train epoch ${req.epoch}`,
        );
      }
      await checkPlan(s, req);
      s.clean = false; // until the epoch returns normally
      const result = await trainOnRing(s, req, ctl).catch((err: unknown) => {
        throw asFailure(err);
      });
      s.clean = true;
      if (result.complete) {
        s.epoch = req.epoch;
        s.step = 0;
        s.last = result;
      } else {
        s.step = result.stepsDone;
      }
      return {
        epoch: req.epoch,
        rank: req.rank,
        steps: result.steps,
        trainLoss: result.trainLoss,
        trainAccuracy: result.trainAccuracy,
        seconds: result.seconds,
        paramsDigest: await s.thread.digest(),
      };
    },

    async evaluateAndCheckpoint(req) {
      const s = await session(req);
      const last = s.last;
      const recorded = s.epoch === req.epoch && s.step === 0 ? recordedEpoch(req.outDir, req.epoch) : null;
      if (last?.epoch !== req.epoch && recorded) return summaryOf(recorded.row, recorded.checkpoint);
      if (s.epoch !== req.epoch || s.step !== 0 || last?.epoch !== req.epoch) {
        throw fail(
          FAILURE_TYPES.positionLost,
          `run ${req.runId}: this process does not hold the end of epoch ${req.epoch}`,
        );
      }
      const row = await s.thread.finishEpoch(last, { everyEpoch: true });
      await opts.onEpoch?.(row, s.epochs);
      return summaryOf(row, join(runPaths(req.outDir).checkpoints, checkpointFileName(req.epoch, 0)));
    },

    async checkpointNow(req) {
      const s = sessions.get(req.runId);
      if (s?.clean && s.step > 0 && req.generation >= s.generation) {
        return s.thread.saveCheckpoint({ epoch: s.epoch, step: s.step });
      }
      const latest = listCheckpoints(runPaths(req.outDir).checkpoints).at(-1);
      return latest ? `${runPaths(req.outDir).checkpoints}/${latest}` : null;
    },

    async finishRun(req) {
      const s = await session(req);
      const t0 = started.get(req.runId);
      const seconds = t0 === undefined ? req.seconds : (performance.now() - t0) / 1000;
      await s.thread.finishRun({ seconds, backend: s.backend });
      await drop(req.runId);
      started.delete(req.runId);
    },

    async dispose() {
      await Promise.all([...sessions.keys()].map(drop));
      await rings.close();
    },
  };

  /**
   * Trains the epoch on the compute thread. Every step's allreduce carries one extra value, the
   * number of ranks asked to stop, so a cancelled world stops after the same step on every rank
   * (with W = 1 the "allreduce" only sets that vote).
   */
  async function trainOnRing(s: Session, req: TrainRequest, ctl: RankControl): Promise<EpochResult> {
    /** Bytes this rank sent for the running step (all its pieces, with overlap). */
    let stepBytes = 0;
    let allreduceBytes: number | undefined;
    let lastStepMs = 0;
    const step = (r: StepReport) => {
      lastStepMs = 1000 * (r.computeSeconds + r.reduceSeconds);
      if (req.worldSize > 1) [allreduceBytes, stepBytes] = [stepBytes, 0];
      ctl.heartbeat(r.step, { computeSeconds: r.computeSeconds, reduceSeconds: r.reduceSeconds });
      opts.onStep?.({ ...r, allreduceBytes }, s.epochs);
    };
    const args = { epoch: req.epoch, fromStep: s.step };
    const vote = (wire: Float32Array, tag: AllreduceTag) => {
      if (carriesStopVote(wire, tag)) wire[wire.length - 1] = ctl.shouldStop() ? 1 : 0;
    };
    if (req.worldSize === 1) {
      const handlers: EpochHandlers = { reduce: async (wire, tag) => vote(wire, tag), step };
      return s.thread.trainEpoch(args, handlers);
    }
    let ring: Awaited<ReturnType<RankRing['ringFor']>>;
    try {
      ring = await rings.ringFor(req, s.cfg);
    } catch (err) {
      if (err instanceof StaleRendezvousError) throw fail(FAILURE_TYPES.positionLost, err.message);
      throw err;
    }
    if (!announced.has(ring)) {
      announced.add(ring);
      opts.log?.(
        `rank ${req.rank}: ring of generation ${req.generation} (${req.worldSize} ranks) formed, chunks on the ${ring.dataPlane} data plane`,
      );
    }
    const handlers: EpochHandlers = {
      async reduce(wire, tag) {
        vote(wire, tag);
        const sent = ring.stats().bytesSent;
        await ring.allreduce(wire, tag);
        stepBytes += ring.stats().bytesSent - sent;
      },
      step,
    };
    let grace: NodeJS.Timeout | undefined;
    const onAbort = () => {
      grace = setTimeout(
        () => ring.abort(`rank ${req.rank}: cancelled, and the world did not agree to stop (a rank is lost)`),
        STOP_GRACE_MS + 2 * lastStepMs,
      );
    };
    ctl.signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await s.thread.trainEpoch(args, handlers);
    } catch (err) {
      await rings.drop(); // a broken ring is rebuilt by the next attempt
      throw err;
    } finally {
      ctl.signal.removeEventListener('abort', onAbort);
      clearTimeout(grace);
    }
  }
}

/** The workflow's plan must be the one this rank derives from its own config and data. */
async function checkPlan(s: Session, req: TrainRequest): Promise<void> {
  const { alpha, lr } = epochSchedule(s.cfg, req.epoch);
  const problems: string[] = [];
  if (req.plan.alpha !== alpha) problems.push(`alpha ${req.plan.alpha} (this rank: ${alpha})`);
  if (req.plan.lr !== lr) problems.push(`lr ${req.plan.lr} (this rank: ${lr})`);
  if (req.plan.digest !== undefined) {
    const own = await s.thread.plan(req.epoch);
    if (req.plan.steps !== own.steps) problems.push(`steps ${req.plan.steps} (this rank: ${own.steps})`);
    const digest = own.digest;
    if (req.plan.digest !== digest) problems.push(`plan digest ${req.plan.digest} (this rank: ${digest})`);
  }
  if (problems.length > 0) {
    throw fail(
      FAILURE_TYPES.config,
      `run ${req.runId} epoch ${req.epoch} rank ${req.rank}: the coordinator's plan disagrees with this rank's config and data: ${problems.join(', ')}`,
    );
  }
}
