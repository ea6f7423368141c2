/**
 * The local implementation of {@link TrainingDeps}: world size 1, the single-process `Trainer`
 * running inside the Temporal worker process. Data and model are loaded once per run and kept
 * across epochs (the trainer's state lives in this process); after a process crash, or when the
 * workflow restarts an epoch as a new generation, the session reloads from the newest good
 * checkpoint (`loadLatestGood` + `restoreFrom`). Training is deterministic from a checkpoint, so
 * the run ends with the weights of an uninterrupted `runTraining`.
 */
import { ApplicationFailure } from '@temporalio/common';
import { ConfigError, parseRunConfig, type RunConfig } from '../core/config.ts';
import { epochSchedule } from '../core/epoch-schedule.ts';
import { Rng } from '../core/rng.ts';
import type { LoadedData } from '../data/api.ts';
import { loadData } from '../data/load.ts';
import type { Model } from '../model/api.ts';
import { createModel } from '../model/factory.ts';
import { listCheckpoints, loadLatestGood } from '../worker/checkpoint.ts';
import { modelSpecFor, restoreFrom, saveCheckpoint } from '../worker/run.ts';
import {
  type EpochMetrics,
  initRunDir,
  readMetrics,
  rewriteMetrics,
  runPaths,
  shotFields,
  summarise,
  writeSummary,
} from '../worker/run-dir.ts';
import { type EpochResult, Trainer, type TrainerState } from '../worker/trainer.ts';
import type { TrainingDeps } from './activities.ts';
import { FAILURE_TYPES, type RunRef } from './api.ts';

/** Options of the local implementation. */
export interface LocalDepsOptions {
  /** Backend name recorded in summary.json (the caller selected it). */
  readonly backend: string;
  /** Data to use instead of loading the config's data set (tests share one copy). */
  readonly data?: LoadedData;
}

/** One run's in-process state. */
interface Session {
  readonly key: string;
  readonly cfg: RunConfig;
  readonly data: LoadedData;
  readonly model: Model;
  readonly trainer: Trainer;
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

/** Local (W=1, in-process) training dependencies; `dispose()` frees every run's model. */
export function createLocalDeps(opts: LocalDepsOptions): TrainingDeps & { dispose(): void } {
  const sessions = new Map<string, Session>();
  const started = new Map<string, number>();

  const drop = (runId: string) => {
    sessions.get(runId)?.model.dispose();
    sessions.delete(runId);
  };

  /** A new session: data, and the model initialised from the seed exactly as `runTraining` does. */
  const open = async (req: RunRef, cfg: RunConfig, key: string): Promise<Session> => {
    const data = opts.data ?? (await loadData(cfg.dataset));
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
      trainer: new Trainer(cfg, data, model),
      generation: req.generation,
      epoch: 0,
      step: 0,
      clean: true,
      partial: undefined,
      last: undefined,
    };
    sessions.set(req.runId, s);
    const latest = loadLatestGood(runPaths(req.outDir).checkpoints, model.signature);
    if (latest) {
      restoreFrom(latest, model, s.trainer);
      s.epoch = latest.checkpoint.meta.epoch;
      s.step = latest.checkpoint.meta.step;
      s.partial = s.step > 0 ? s.trainer.state().partial : undefined;
    }
    return s;
  };

  /** The run's session positioned at its newest good checkpoint (a fresh one if there is none). */
  const reopen = async (req: RunRef, s: Session): Promise<Session> => {
    const generation = s.generation;
    drop(req.runId);
    const fresh = await open(req, s.cfg, s.key);
    fresh.generation = generation;
    return fresh;
  };

  /** The run's session, created on first use; checks the generation (fencing). */
  const session = async (req: RunRef): Promise<Session> => {
    const cfg = configOf(req);
    const key = `${req.outDir}\n${JSON.stringify(cfg)}`;
    let s = sessions.get(req.runId);
    if (s && s.key !== key) {
      drop(req.runId);
      s = undefined;
    }
    if (!s) return open(req, cfg, key);
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
      // The plan is a drop-last prefix of a permutation of the training set.
      return { epoch: req.epoch, alpha, lr, steps: Math.floor(s.data.train.size / s.cfg.train.batchSize) };
    },

    async trainEpochOnRank(req, ctl) {
      if (req.worldSize !== 1 || req.rank !== 0) {
        throw fail(
          FAILURE_TYPES.unsupported,
          `local training runs world size 1 only (asked for rank ${req.rank} of ${req.worldSize}); use the multi-process worker`,
        );
      }
      let s = await session(req);
      if (s.epoch !== req.epoch - 1) s = await reopen(req, s);
      if (s.epoch !== req.epoch - 1) {
        throw fail(
          FAILURE_TYPES.positionLost,
          `run ${req.runId}: the last checkpoint is at epoch ${s.epoch}, cannot train epoch ${req.epoch}`,
        );
      }
      s.clean = false; // until the epoch returns normally
      const result = await s.trainer.trainEpoch(req.epoch, {
        fromStep: s.step,
        partial: s.step > 0 ? s.partial : undefined,
        onStep: (r) => ctl.heartbeat(r.step),
        shouldStop: ctl.shouldStop,
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
      };
    },

    async evaluateAndCheckpoint(req) {
      const s = await session(req);
      const last = s.last;
      if (s.epoch !== req.epoch || s.step !== 0 || last?.epoch !== req.epoch) {
        throw fail(
          FAILURE_TYPES.positionLost,
          `run ${req.runId}: this process does not hold the end of epoch ${req.epoch}`,
        );
      }
      const report = await s.trainer.evaluate();
      const row: EpochMetrics = {
        epoch: req.epoch,
        stage: last.stage,
        alpha: last.alpha,
        lr: last.lr,
        trainLoss: last.trainLoss,
        trainAccuracy: last.trainAccuracy,
        ...shotFields(report),
        seconds: last.seconds,
        stepsPerSecond: last.steps / last.seconds,
      };
      // Idempotent under retries: rows after this epoch's predecessor are replaced.
      rewriteMetrics(req.outDir, [...readMetrics(req.outDir, req.epoch - 1), row]);
      const checkpoint = await saveCheckpoint(req.outDir, s.cfg, s.model, s.trainer, {
        epoch: req.epoch,
        step: 0,
      });
      return {
        epoch: req.epoch,
        alpha: last.alpha,
        lr: last.lr,
        trainLoss: last.trainLoss,
        testTop1: report.top1,
        many: report.many,
        medium: report.medium,
        few: report.few,
        checkpoint,
      };
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
      const cfg = configOf(req);
      const t0 = started.get(req.runId);
      const seconds = t0 === undefined ? req.seconds : (performance.now() - t0) / 1000;
      writeSummary(
        req.outDir,
        summarise(readMetrics(req.outDir), {
          name: cfg.name,
          method: cfg.method,
          seconds,
          backend: opts.backend,
        }),
      );
      drop(req.runId);
      started.delete(req.runId);
    },

    dispose() {
      for (const runId of [...sessions.keys()]) drop(runId);
    },
  };
}
