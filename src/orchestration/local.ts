/**
 * The training side of one rank's Temporal worker process ({@link TrainingDeps}): the `Trainer`
 * runs inside this process, for world size 1 (the embedded local default) or as rank r of W,
 * summing gradients with the peers over the gRPC ring (`RankRing`; Temporal's `ringAddress`
 * activity is the rendezvous). Data and model are loaded once per run and kept across epochs;
 * after a process crash, a new generation (a failure, or a change of W) or a request this process
 * cannot continue, the session reloads from the newest good checkpoint (`loadLatestGood` +
 * `restoreFrom`). Training is deterministic from a checkpoint and the plan is world-size
 * invariant, so the run ends with the weights of an uninterrupted `runTraining`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { ConfigError, parseRunConfig, type RunConfig } from '../core/config.ts';
import { planDigest } from '../core/epoch-plan.ts';
import { epochSchedule } from '../core/epoch-schedule.ts';
import { Rng } from '../core/rng.ts';
import type { LoadedData } from '../data/api.ts';
import { loadData } from '../data/load.ts';
import type { Model } from '../model/api.ts';
import { createModel } from '../model/factory.ts';
import {
  CheckpointError,
  checkpointFileName,
  type LatestCheckpoint,
  listCheckpoints,
} from '../worker/checkpoint.ts';
import { paramsDigest } from '../worker/process/digests.ts';
import { RunRecorder } from '../worker/recorder.ts';
import { loadRestorable, modelSpecFor, restoreFrom, saveCheckpoint } from '../worker/run.ts';
import { type EpochMetrics, initRunDir, readMetrics, rewriteMetrics, runPaths } from '../worker/run-dir.ts';
import {
  DivergenceError,
  type EpochResult,
  type RankInfo,
  type Reducer,
  type StepReport,
  Trainer,
  type TrainerState,
} from '../worker/trainer.ts';
import type { RankControl, TrainingDeps } from './activities.ts';
import { type EpochSummary, FAILURE_TYPES, type RunRef, type TrainRequest } from './api.ts';
import { RankRing, type RankRingOptions, StaleRendezvousError } from './rank-ring.ts';

/** Options of the local implementation. */
export interface LocalDepsOptions {
  /** Backend name recorded in summary.json (the caller selected it). */
  readonly backend: string;
  /** Data to use instead of loading the config's data set (tests share one copy). */
  readonly data?: LoadedData;
  /** Progress of this process's steps (e.g. the CLI's progress bar); must not throw. */
  readonly onStep?: (report: StepReport & { readonly allreduceBytes?: number }, epochs: number) => void;
  /** Rank 0's metrics row of each evaluated epoch, awaited before the activity returns; must not throw. */
  readonly onEpoch?: (row: EpochMetrics, epochs: number) => void | Promise<void>;
  /** Called when this process opens a run (its config and its place in the world), e.g. to start telemetry. */
  readonly onOpen?: (cfg: RunConfig, layout: RankInfo) => void;
  /** Lines for people (which checkpoint a session resumed from, which were skipped). */
  readonly log?: (line: string) => void;
  /** Where this rank's ring peer server binds (used when W > 1). */
  readonly ring?: RankRingOptions;
}

/**
 * After the workflow cancels a W > 1 epoch, the ranks agree to stop after one more step; if the
 * ring has not got there by this bound (a peer is gone), it is aborted so the activity ends.
 */
const STOP_GRACE_MS = 30_000;

/** One run's in-process state. */
interface Session {
  readonly key: string;
  readonly cfg: RunConfig;
  readonly data: LoadedData;
  readonly model: Model;
  readonly trainer: Trainer;
  /** This session's place in the world (the trainer's shard); a new layout reloads the session. */
  readonly layout: RankInfo;
  /** What the trainer's reducer does right now (set per epoch: the ring's allreduce when W > 1). */
  reduce: Reducer;
  /** Highest generation seen; requests of older generations are refused (fencing). */
  generation: number;
  /** Completed epochs and steps of the next that the in-memory state holds. */
  epoch: number;
  step: number;
  /** False after an error mid-epoch or a generation change: reload from the checkpoint before use. */
  clean: boolean;
  /** Running sums of a partly trained epoch (for a resume mid-epoch). */
  partial: TrainerState['partial'] | undefined;
  last: EpochResult | undefined;
  /** Rank 0's evaluation, metrics, TensorBoard and checkpoint writer (created on first use). */
  recorder?: RunRecorder;
}

function fail(type: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: type !== FAILURE_TYPES.positionLost });
}

function configOf(req: RunRef): RunConfig {
  try {
    return parseRunConfig(req.config, `run ${req.runId} config`);
  } catch (err) {
    if (err instanceof ConfigError) throw fail(FAILURE_TYPES.config, err.message);
    throw err;
  }
}

const sameLayout = (a: RankInfo, b: RankInfo) => a.rank === b.rank && a.worldSize === b.worldSize;
const noReduce: Reducer = async () => {};

/** This process's rank training dependencies; `dispose()` frees every run's model and the ring. */
export function createLocalDeps(opts: LocalDepsOptions): TrainingDeps & { dispose(): Promise<void> } {
  const sessions = new Map<string, Session>();
  const started = new Map<string, number>();
  const rings = new RankRing(opts.ring);

  const drop = (runId: string) => {
    const s = sessions.get(runId);
    s?.recorder?.close();
    s?.model.dispose();
    sessions.delete(runId);
  };
  const recorderOf = (req: RunRef, s: Session): RunRecorder => {
    s.recorder ??= new RunRecorder(req.outDir, s.cfg, s.data, s.model, s.trainer);
    return s.recorder;
  };

  /** A new session: data, and the model initialised from the seed exactly as `runTraining` does. */
  const open = async (
    req: RunRef,
    cfg: RunConfig,
    key: string,
    layout: RankInfo = { rank: 0, worldSize: 1 },
    loaded?: LoadedData,
  ): Promise<Session> => {
    const data = loaded ?? opts.data ?? (await loadData(cfg.dataset));
    if (cfg.train.batchSize > data.train.size) {
      throw fail(
        FAILURE_TYPES.config,
        `train.batchSize (${cfg.train.batchSize}) is larger than the training set (${data.train.size} images of ${data.train.name})`,
      );
    }
    const model = createModel(modelSpecFor(cfg, data), Rng.fromSeed(cfg.seed).split('init'));
    const s: Session = {
      key,
      cfg,
      data,
      model,
      trainer: new Trainer(cfg, data, model, layout, (buf, tag) => s.reduce(buf, tag)),
      layout,
      reduce: noReduce,
      generation: req.generation,
      epoch: 0,
      step: 0,
      clean: true,
      partial: undefined,
      last: undefined,
    };
    // Restore before the session exists: a retry must not find a fresh session and train from epoch 1.
    let latest: LatestCheckpoint | undefined;
    try {
      latest = loadRestorable(req.outDir, model);
    } catch (err) {
      model.dispose();
      throw err instanceof CheckpointError ? fail(FAILURE_TYPES.config, err.message) : err;
    }
    sessions.set(req.runId, s);
    opts.onOpen?.(cfg, layout);
    for (const r of latest?.rejected ?? []) opts.log?.(`skipped bad checkpoint: ${r.reason}`);
    if (latest) {
      opts.log?.(
        `resuming from ${latest.path} (epoch ${latest.checkpoint.meta.epoch + 1} step ${latest.checkpoint.meta.step})`,
      );
      restoreFrom(latest, model, s.trainer);
      s.epoch = latest.checkpoint.meta.epoch;
      s.step = latest.checkpoint.meta.step;
      s.partial = s.step > 0 ? s.trainer.state().partial : undefined;
    }
    return s;
  };

  /** The run's session positioned at its newest good checkpoint (a fresh one if there is none). */
  const reopen = async (req: RunRef, s: Session, layout = s.layout): Promise<Session> => {
    const generation = s.generation;
    drop(req.runId);
    const fresh = await open(req, s.cfg, s.key, layout, s.data);
    fresh.generation = generation;
    return fresh;
  };

  /** The run's session, created on first use; checks the generation (fencing). */
  const session = async (req: RunRef, layout?: RankInfo): Promise<Session> => {
    const cfg = configOf(req);
    const key = `${req.outDir}\n${JSON.stringify(cfg)}`;
    let s = sessions.get(req.runId);
    if (s && s.key !== key) {
      drop(req.runId);
      s = undefined;
    }
    if (!s) return open(req, cfg, key, layout);
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
    return s.clean ? s : reopen(req, s);
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
        drop(req.runId);
        initRunDir(req.outDir, cfg);
        rewriteMetrics(req.outDir, []);
      }
      started.set(req.runId, performance.now());
      const s = await session(req);
      if (req.resume) rewriteMetrics(req.outDir, readMetrics(req.outDir, s.epoch));
      const latest = listCheckpoints(ckptDir).at(-1);
      return { startEpoch: s.epoch + 1, checkpoint: latest ? `${ckptDir}/${latest}` : null };
    },

    async planEpoch(req) {
      const s = await session(req);
      const { alpha, lr } = epochSchedule(s.cfg, req.epoch);
      const plan = s.trainer.plan(req.epoch);
      return { epoch: req.epoch, alpha, lr, steps: plan.steps, digest: planDigest(plan) };
    },

    ringAddress: () => rings.address(),

    async trainEpochOnRank(req, ctl) {
      const layout = { rank: req.rank, worldSize: req.worldSize };
      let s = await session(req, layout);
      if (s.epoch !== req.epoch - 1 || !sameLayout(s.layout, layout)) s = await reopen(req, s, layout);
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
          paramsDigest: Buffer.from(paramsDigest(s.model.getParams())).toString('hex'),
        };
      }
      if (s.epoch !== req.epoch - 1) {
        throw fail(
          FAILURE_TYPES.positionLost,
          `run ${req.runId}: the last checkpoint is at epoch ${s.epoch}, cannot train epoch ${req.epoch}`,
        );
      }
      checkPlan(s, req);
      s.clean = false; // until the epoch returns normally
      const result = await trainOnRing(s, req, ctl).catch((err) => {
        // Retrying a diverged step from the same checkpoint diverges again: fail the run at once.
        throw err instanceof DivergenceError ? fail(FAILURE_TYPES.config, err.message) : err;
      });
      s.clean = true;
      if (result.complete) {
        s.epoch = req.epoch;
        s.step = 0;
        s.partial = undefined;
        s.last = result;
      } else {
        s.step = result.stepsDone;
        s.partial = s.trainer.state().partial;
      }
      return {
        epoch: req.epoch,
        rank: req.rank,
        steps: result.steps,
        trainLoss: result.trainLoss,
        trainAccuracy: result.trainAccuracy,
        seconds: result.seconds,
        paramsDigest: Buffer.from(paramsDigest(s.model.getParams())).toString('hex'),
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
      const recorder = recorderOf(req, s);
      const row = await recorder.finishEpoch(last, { everyEpoch: true });
      await opts.onEpoch?.(row, s.trainer.epochs);
      return summaryOf(row, recorder.lastCheckpoint ?? '');
    },

    async checkpointNow(req) {
      const s = sessions.get(req.runId);
      if (s?.clean && s.step > 0 && req.generation >= s.generation) {
        return saveCheckpoint(req.outDir, s.cfg, s.model, s.trainer, { epoch: s.epoch, step: s.step });
      }
      const latest = listCheckpoints(runPaths(req.outDir).checkpoints).at(-1);
      return latest ? `${runPaths(req.outDir).checkpoints}/${latest}` : null;
    },

    async finishRun(req) {
      const s = await session(req);
      const t0 = started.get(req.runId);
      const seconds = t0 === undefined ? req.seconds : (performance.now() - t0) / 1000;
      await recorderOf(req, s).finishRun({ seconds, backend: opts.backend });
      drop(req.runId);
      started.delete(req.runId);
    },

    async dispose() {
      for (const runId of [...sessions.keys()]) drop(runId);
      await rings.close();
    },
  };

  /**
   * Trains the epoch; with W > 1 every step's allreduce carries one extra value, the number of
   * ranks asked to stop, so a cancelled world stops after the same step on every rank.
   */
  async function trainOnRing(s: Session, req: TrainRequest, ctl: RankControl): Promise<EpochResult> {
    const from = { fromStep: s.step, partial: s.step > 0 ? s.partial : undefined };
    let allreduceBytes: number | undefined;
    const onStep = (r: StepReport) => {
      ctl.heartbeat(r.step);
      opts.onStep?.({ ...r, allreduceBytes }, s.trainer.epochs);
    };
    if (req.worldSize === 1) {
      return s.trainer.trainEpoch(req.epoch, { ...from, onStep, shouldStop: ctl.shouldStop });
    }
    let ring: Awaited<ReturnType<RankRing['ringFor']>>;
    try {
      ring = await rings.ringFor(req, s.cfg);
    } catch (err) {
      if (err instanceof StaleRendezvousError) throw fail(FAILURE_TYPES.positionLost, err.message);
      throw err;
    }
    let agreedStop = false;
    let wire = new Float32Array(0);
    s.reduce = async (buf, tag) => {
      if (wire.length !== buf.length + 1) wire = new Float32Array(buf.length + 1);
      wire.set(buf);
      wire[buf.length] = ctl.shouldStop() ? 1 : 0;
      const sent = ring.stats().bytesSent;
      await ring.allreduce(wire, tag);
      allreduceBytes = ring.stats().bytesSent - sent;
      buf.set(wire.subarray(0, buf.length));
      agreedStop = wire[buf.length] > 0;
    };
    let grace: NodeJS.Timeout | undefined;
    const onAbort = () => {
      grace = setTimeout(
        () => ring.abort(`rank ${req.rank}: cancelled, and the world did not stop`),
        STOP_GRACE_MS,
      );
    };
    ctl.signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await s.trainer.trainEpoch(req.epoch, { ...from, onStep, shouldStop: () => agreedStop });
    } catch (err) {
      await rings.drop(); // a broken ring is rebuilt by the next attempt
      throw err;
    } finally {
      ctl.signal.removeEventListener('abort', onAbort);
      clearTimeout(grace);
      s.reduce = noReduce;
    }
  }
}

/** Epoch `epoch`'s metrics row and end-of-epoch checkpoint, when both are on disk (rank 0 wrote them in that order). */
function recordedEpoch(outDir: string, epoch: number): { row: EpochMetrics; checkpoint: string } | null {
  const row = readMetrics(outDir, epoch).find((m) => m.epoch === epoch);
  const checkpoint = join(runPaths(outDir).checkpoints, checkpointFileName(epoch, 0));
  return row && existsSync(checkpoint) ? { row, checkpoint } : null;
}

/** What the workflow records of an evaluated epoch. */
function summaryOf(row: EpochMetrics, checkpoint: string): EpochSummary {
  return {
    epoch: row.epoch,
    alpha: row.alpha,
    lr: row.lr,
    trainLoss: row.trainLoss,
    testTop1: row.testTop1,
    many: row.many,
    medium: row.medium,
    few: row.few,
    checkpoint,
  };
}

/** The workflow's plan must be the one this rank derives from its own config and data. */
function checkPlan(s: Session, req: TrainRequest): void {
  const { alpha, lr } = epochSchedule(s.cfg, req.epoch);
  const problems: string[] = [];
  if (req.plan.alpha !== alpha) problems.push(`alpha ${req.plan.alpha} (this rank: ${alpha})`);
  if (req.plan.lr !== lr) problems.push(`lr ${req.plan.lr} (this rank: ${lr})`);
  if (req.plan.digest !== undefined) {
    const own = s.trainer.plan(req.epoch);
    if (req.plan.steps !== own.steps) problems.push(`steps ${req.plan.steps} (this rank: ${own.steps})`);
    const digest = planDigest(own);
    if (req.plan.digest !== digest) problems.push(`plan digest ${req.plan.digest} (this rank: ${digest})`);
  }
  if (problems.length > 0) {
    throw fail(
      FAILURE_TYPES.config,
      `run ${req.runId} epoch ${req.epoch} rank ${req.rank}: the coordinator's plan disagrees with this rank's config and data: ${problems.join(', ')}`,
    );
  }
}
