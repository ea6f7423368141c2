/**
 * One training run in one process, end to end: data, model, epochs, evaluation, metrics,
 * checkpoints and the summary, into a run directory (see run-dir.ts). `bbn train` calls this; the
 * distributed worker of rank 0 reuses its pieces (`modelSpecFor`, `saveCheckpoint`, `restoreFrom`).
 */
import type { RunConfig } from '../core/config.ts';
import { Rng } from '../core/rng.ts';
import type { LoadedData } from '../data/api.ts';
import type { Model, ModelSpec } from '../model/api.ts';
import { createModel } from '../model/factory.ts';
import type { LatestCheckpoint } from './checkpoint.ts';
import { RunRecorder } from './recorder.ts';
import { loadRestorable, restoreFrom, saveCheckpoint } from './run-checkpoint.ts';
import { loadRunData } from './run-inputs.ts';

export { loadRestorable, restoreFrom, saveCheckpoint };

import { type EpochMetrics, initRunDir, type RunSummary, readMetrics, rewriteMetrics } from './run-dir.ts';
import { type StepReport, Trainer, type TrainerState } from './trainer.ts';

/** The model a run of `cfg` trains on `data`. */
export function modelSpecFor(cfg: RunConfig, data: LoadedData): ModelSpec {
  const [h, w, c] = data.augment ? outputShapeOf(data) : data.train.imageShape;
  return {
    variant: cfg.method === 'bbn' ? 'bbn' : 'single',
    backbone: cfg.model.backbone,
    depth: cfg.model.backbone === 'resnet50' ? 50 : cfg.model.depth,
    baseWidth: cfg.model.backbone === 'resnet50' ? 64 : cfg.model.baseWidth,
    numClasses: data.train.numClasses,
    inputShape: [h, w, c],
    bnGammaInit: cfg.model.bnGammaInit,
  };
}

function outputShapeOf(data: LoadedData): readonly [number, number, number] {
  const t = data.augment.test;
  return t.kind === 'resize_center_crop' ? [t.size, t.size, data.train.imageShape[2]] : data.train.imageShape;
}

/** Callbacks and controls of a run. */
export interface RunHooks {
  /** Called before training with what was loaded (for the long-tail profile and the backend line). */
  onStart?(info: {
    data: LoadedData;
    model: Model;
    resumedFrom?: LatestCheckpoint;
    startEpoch: number;
  }): void;
  onStep?(r: StepReport, epochs: number): void;
  onEpoch?(m: EpochMetrics, epochs: number): void;
  /** Polled between steps: true stops the run after the current step, with a checkpoint. */
  shouldStop?(): boolean;
}

/** How a run ended. */
export type RunOutcome =
  | { readonly kind: 'finished'; readonly summary: RunSummary }
  | { readonly kind: 'stopped'; readonly checkpoint: string; readonly epoch: number; readonly step: number };

/**
 * Trains `cfg` into `outDir`. With `resume`, continues from the newest restorable checkpoint in
 * `outDir` (`loadRestorable`: same run, model and sizes, finite weights), dropping metrics rows of
 * epochs after it; when checkpoints exist and none is restorable it throws before writing anything.
 * The caller claims the directory first (`claimRunDir`: lock, no overwrite of another run).
 */
export async function runTraining(
  cfg: RunConfig,
  outDir: string,
  opts: { resume?: boolean; backend: string; hooks?: RunHooks; data?: LoadedData },
): Promise<RunOutcome> {
  const started = performance.now();
  const hooks = opts.hooks ?? {};
  const data = opts.data ?? (await loadRunData(cfg));
  const model = createModel(modelSpecFor(cfg, data), Rng.fromSeed(cfg.seed).split('init'));
  try {
    const trainer = new Trainer(cfg, data, model);
    let startEpoch = 1;
    let fromStep = 0;
    let partial: TrainerState['partial'] | undefined;
    let latest: LatestCheckpoint | undefined;
    if (opts.resume) {
      latest = loadRestorable(outDir, model);
      if (latest) {
        restoreFrom(latest, model, trainer);
        startEpoch = latest.checkpoint.meta.epoch + 1;
        fromStep = latest.checkpoint.meta.step;
        partial = trainer.state().partial;
        rewriteMetrics(outDir, readMetrics(outDir, latest.checkpoint.meta.epoch));
      }
    } else {
      initRunDir(outDir, cfg);
      rewriteMetrics(outDir, []);
    }
    hooks.onStart?.({ data, model, resumedFrom: latest, startEpoch });
    const epochs = trainer.epochs;
    const recorder = new RunRecorder(outDir, cfg, data, model, trainer);
    try {
      for (let epoch = startEpoch; epoch <= epochs; epoch++) {
        const result = await trainer.trainEpoch(epoch, {
          fromStep,
          partial,
          onStep: (r) => {
            recorder.step(r);
            hooks.onStep?.(r, epochs);
          },
          shouldStop: hooks.shouldStop,
        });
        fromStep = 0;
        partial = undefined;
        if (!result.complete) {
          const position = { epoch: epoch - 1, step: result.stepsDone };
          const checkpoint = await saveCheckpoint(outDir, cfg, model, trainer, position);
          return { kind: 'stopped', checkpoint, ...position };
        }
        const row = await recorder.finishEpoch(result);
        hooks.onEpoch?.(row, epochs);
      }
      const summary = await recorder.finishRun({
        seconds: (performance.now() - started) / 1000,
        backend: opts.backend,
      });
      return { kind: 'finished', summary };
    } finally {
      recorder.close();
    }
  } finally {
    model.dispose();
  }
}
