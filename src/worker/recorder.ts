/**
 * What the rank that owns the run directory records, identically for the single-process trainer
 * and for rank 0 of a distributed run: the run's config (as text) and settings (hparams) in its
 * TensorBoard file, each step's loss, accuracy, lr, α and throughput as TensorBoard scalars (x: the
 * global step); at each epoch's end it evaluates, appends the metrics row, writes the epoch's
 * TensorBoard scalars (x: the epoch; per-class accuracy up to {@link PER_CLASS_TB_LIMIT} classes)
 * and the checkpoint when due; at the end it writes summary.json with the confusion matrix and the
 * classifier weight norms of the final model.
 */

import { stringify } from 'yaml';
import type { RunConfig } from '../core/config.ts';
import { confusionMatrix } from '../core/metrics.ts';
import type { LoadedData } from '../data/api.ts';
import { confusionPng } from '../metrics/confusion-image.ts';
import {
  epochScalars,
  HPARAMS_SESSION_START_TAG,
  hparamsContent,
  type Scalar,
  TensorBoardWriter,
} from '../metrics/tensorboard.ts';
import type { Model } from '../model/api.ts';
import { type ClassifierNorms, classifierNorms, type NormStats } from '../model/norms.ts';
import { saveCheckpoint } from './run-checkpoint.ts';
import {
  type EpochMetrics,
  type RunSummary,
  readMetrics,
  rewriteMetrics,
  shotFields,
  summarise,
  writeSummary,
} from './run-dir.ts';
import type { EpochResult, StepReport, Trainer } from './trainer.ts';

/** Per-class accuracy goes to TensorBoard for at most this many classes (CIFAR-100, not iNat's 8142). */
export const PER_CLASS_TB_LIMIT = 100;

/** The config's primitive leaves by dotted key (arrays as JSON): TensorBoard's hparams of the run. */
export function hparamsOf(cfg: RunConfig): Record<string, number | string | boolean> {
  const out: Record<string, number | string | boolean> = {};
  const walk = (v: unknown, key: string) => {
    if (v === null || v === undefined) return;
    if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') out[key] = v;
    else if (Array.isArray(v)) out[key] = JSON.stringify(v);
    else if (typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, key ? `${key}.${k}` : k);
  };
  walk(cfg, '');
  return out;
}

/** One step's TensorBoard scalars; throughput is the world's (every rank steps in lockstep). */
export function stepScalars(r: StepReport, globalBatch: number): Scalar[] {
  const seconds = r.computeSeconds + r.reduceSeconds;
  const out: Scalar[] = [
    { tag: 'step/loss', value: r.loss },
    { tag: 'step/accuracy', value: r.accuracy },
    { tag: 'step/lr', value: r.lr },
  ];
  if (r.alpha !== null) out.push({ tag: 'step/alpha', value: r.alpha });
  if (seconds > 0) out.push({ tag: 'step/samples_per_second', value: globalBatch / seconds });
  return out;
}
function normSummary(n: ClassifierNorms): RunSummary['weightNorms'] {
  const one = (s: NormStats) => ({ norms: Array.from(s.norms), mean: s.mean, std: s.std });
  return { all: one(n.all), cb: n.cb && one(n.cb), rb: n.rb && one(n.rb) };
}

/** Records a run's epochs and summary into its run directory. */
export class RunRecorder {
  private readonly tensorboard: TensorBoardWriter;
  /** Test predictions of the last evaluated epoch, for the summary's confusion matrix. */
  private lastPredictions?: Int32Array;

  constructor(
    private readonly outDir: string,
    private readonly cfg: RunConfig,
    private readonly data: LoadedData,
    private readonly model: Model,
    private readonly trainer: Trainer,
  ) {
    this.tensorboard = new TensorBoardWriter(outDir);
    const yaml = stringify(cfg);
    this.tensorboard.plugins(0, [
      { tag: 'config', plugin: 'text', text: `\`\`\`yaml\n${yaml}\`\`\`` },
      {
        tag: HPARAMS_SESSION_START_TAG,
        plugin: 'hparams',
        content: hparamsContent(hparamsOf(cfg), Date.now() / 1000),
        text: '',
      },
    ]);
  }

  /** Records one step's scalars at its global step (flushed with the epoch). */
  step(r: StepReport): void {
    this.tensorboard.scalars((r.epoch - 1) * r.steps + r.step, stepScalars(r, this.cfg.train.batchSize));
  }

  /** Path of the last checkpoint `finishEpoch` wrote. */
  lastCheckpoint: string | undefined;

  /**
   * Evaluates, records the metrics row (replacing rows of this epoch and later, so a retried epoch
   * is recorded once), writes TensorBoard scalars and the epoch checkpoint when due (or always,
   * with `everyEpoch`: a durable run restarts from any epoch boundary).
   */
  async finishEpoch(result: EpochResult, opts: { everyEpoch?: boolean } = {}): Promise<EpochMetrics> {
    const report = await this.trainer.evaluate();
    this.lastPredictions = report.predictions;
    const row: EpochMetrics = {
      epoch: result.epoch,
      stage: result.stage,
      alpha: result.alpha,
      lr: result.lr,
      trainLoss: result.trainLoss,
      trainAccuracy: result.trainAccuracy,
      ...shotFields(report),
      seconds: result.seconds,
      stepsPerSecond: result.steps / result.seconds,
      ...(result.skippedSteps > 0 ? { skippedSteps: result.skippedSteps } : {}),
    };
    rewriteMetrics(this.outDir, [...readMetrics(this.outDir, result.epoch - 1), row]);
    const perClass =
      row.perClass.length <= PER_CLASS_TB_LIMIT
        ? row.perClass.map((value, c) => ({
            tag: `accuracy_per_class/class_${String(c).padStart(3, '0')}`,
            value,
          }))
        : [];
    this.tensorboard.scalars(result.epoch, [...epochScalars(row), ...perClass]);
    this.tensorboard.flush();
    const due = result.epoch % this.cfg.checkpoint.everyEpochs === 0 || result.epoch === this.trainer.epochs;
    if (due || opts.everyEpoch) {
      this.lastCheckpoint = await saveCheckpoint(this.outDir, this.cfg, this.model, this.trainer, {
        epoch: result.epoch,
        step: 0,
      });
    }
    return row;
  }

  /** Writes summary.json from all metrics rows and the final model. */
  async finishRun(info: { seconds: number; backend: string }): Promise<RunSummary> {
    const predictions = this.lastPredictions ?? (await this.trainer.evaluate()).predictions;
    const { test } = this.data;
    const confusion = confusionMatrix(predictions, test.labels, test.numClasses).map((row) =>
      Array.from(row),
    );
    const rows = readMetrics(this.outDir);
    this.tensorboard.image(rows.at(-1)?.epoch ?? 0, 'confusion_matrix', confusionPng(confusion));
    this.tensorboard.flush();
    const summary = summarise(rows, {
      name: this.cfg.name,
      method: this.cfg.method,
      ...info,
      trainCounts: this.data.trainCounts,
      confusion,
      weightNorms: normSummary(classifierNorms(this.model)),
    });
    writeSummary(this.outDir, summary);
    return summary;
  }

  /** Closes the TensorBoard file. */
  close(): void {
    this.tensorboard.close();
  }
}
