/**
 * The training jobs behind the analysis figures (docs/analysis.md) and the long-schedule table, and
 * how one is run: the project's trainer (`Trainer`, `retrainClassifier`, `classifierNorms`) on
 * MNIST-LT (`configs/mnist-lt.yaml`) at the size below, evaluated once at the end.
 *
 * A job is one training run, named by what it varies (imbalance ratio, method, α schedule,
 * re-balancing sampler, seed); the studies share jobs (the CE run at IR 100 serves the norms
 * figure, the decoupling grid and the long-schedule table), and each job's result is one JSON file
 * under `bench/analysis/results/runs/`, written when it finishes, so a study resumes where it
 * stopped and shards (`--shard i/n`) run disjoint jobs in parallel processes.
 *
 * CE, RW and RS jobs at IR 100 also retrain their classifier three times (ce, rw, rs; decoupling's
 * stage 2 on the saved representation, `retrainClassifier`): the decoupling grid. The CE job at
 * IR 10 retrains it with rs only (the long-schedule table's decoupling row, cRT).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadRunConfig } from '../../src/cli/config-file.ts';
import type { AlphaScheduleName, DecoupleStageMethod, RunConfig } from '../../src/core/config.ts';
import type { AccuracyReport } from '../../src/core/metrics.ts';
import { Rng } from '../../src/core/rng.ts';
import type { LoadedData } from '../../src/data/api.ts';
import { createModel } from '../../src/model/factory.ts';
import { classifierNorms, type NormStats } from '../../src/model/norms.ts';
import { retrainClassifier } from '../../src/worker/classifier-retrain.ts';
import { modelSpecFor } from '../../src/worker/run.ts';
import { loadRunData } from '../../src/worker/run-inputs.ts';
import { Trainer } from '../../src/worker/trainer.ts';

export const CONFIG = 'configs/mnist-lt.yaml';
export const RESULTS = 'bench/analysis/results';
export const RUNS = join(RESULTS, 'runs');

/**
 * The default run length: 12 epochs, what fits the shared 2-core machine with three seeds of every
 * job of every study (docs/analysis.md). `--epochs N` (run.ts) trains a study's jobs at N epochs
 * in the same schedule shape instead (`scheduleOf`), under their own names (`job`).
 */
export const EPOCHS = 12;

/** The epoch-dependent settings of a run of `epochs` epochs, in the paper's shape (`scheduleOf`). */
export interface Schedule {
  readonly epochs: number;
  /** Linear lr warm-up epochs: the paper's 5 of 200, at least 1. */
  readonly warmupEpochs: number;
  /** lr ×0.1 after these epochs: the paper's 120 and 160 of 200 (60 % and 80 %), rounded. */
  readonly milestones: readonly [number, number];
  /** DRW re-weights from this epoch: the first of the last lr stage (LDAM-DRW's 160 of 200). */
  readonly drwStartEpoch: number;
  /** The separated α stage's last α = 1 epoch: the first lr decay (the official 120 of 200). */
  readonly separateEpoch: number;
  /** Divisor of (epoch − 1) in the parabolic α: the epochs, so α(E) = 1 − ((E−1)/E)² > 0. */
  readonly alphaDiv: number;
  /** The first epoch whose parabolic α is ≤ 0.5 (the paper's 143 of 200, ~71 %). */
  readonly alphaHalfEpoch: number;
  /** Decoupling's classifier-retraining epochs: the paper's 10 for a 200-epoch representation, at least 3. */
  readonly decoupleEpochs: number;
}

/**
 * The paper's CIFAR schedule (200 epochs: 5 warm-up, lr decays after 120 and 160, parabolic α with
 * divisor 200, DRW from 160, cRT 10 epochs) scaled to `epochs`. At 12 epochs this is the table's
 * original size: warm-up 1, decays after 7 and 10, DRW from 11, separated stage to 7, cRT 3.
 */
export function scheduleOf(epochs: number): Schedule {
  if (!Number.isInteger(epochs) || epochs < 5) throw new RangeError(`epochs ${epochs}: want an integer >= 5`);
  const m1 = Math.round(0.6 * epochs);
  const m2 = Math.round(0.8 * epochs);
  // 1 − ((e − 1)/E)² ≤ 0.5 ⇔ e − 1 ≥ E/√2.
  return {
    epochs,
    warmupEpochs: Math.max(1, Math.round(epochs / 40)),
    milestones: [m1, m2],
    drwStartEpoch: m2 + 1,
    separateEpoch: m1,
    alphaDiv: epochs,
    alphaHalfEpoch: Math.ceil(epochs / Math.SQRT2) + 1,
    decoupleEpochs: Math.max(3, Math.round(epochs / 20)),
  };
}

/**
 * The size every job trains at, on top of configs/mnist-lt.yaml: ResNet-8 width 4, one compute
 * thread, and the schedule of `epochs` epochs (`scheduleOf`; at 12: lr ×0.1 after epochs 7 and 10,
 * DRW from the last lr stage (epoch 11, as LDAM-DRW's 160 of 200), 3 classifier-retraining epochs,
 * the separated α stage switching after epoch 7 (the official 120 of 200)).
 */
export function sizeOf(epochs: number): string[] {
  const s = scheduleOf(epochs);
  return [
    'model.depth=8',
    'model.baseWidth=4',
    `train.epochs=${epochs}`,
    `train.lrSchedule.milestones=[${s.milestones.join(',')}]`,
    `train.drwStartEpoch=${s.drwStartEpoch}`,
    `train.decoupleEpochs=${s.decoupleEpochs}`,
    `train.alpha.separateEpoch=${s.separateEpoch}`,
    // configs/mnist-lt.yaml's warm-up (1) and α divisor (auto: the epochs) already, at 12 epochs.
    ...(epochs === EPOCHS
      ? []
      : [`train.lrSchedule.warmupEpochs=${s.warmupEpochs}`, `train.alpha.divEpoch=${s.alphaDiv}`]),
    'compute.threads=1',
  ];
}

/** The size of the default 12-epoch jobs, exactly as their result files record it. */
export const SIZE = sizeOf(EPOCHS);

export type JobMethod = 'ce' | 'rw' | 'rs' | 'drw' | 'bbn';
export type Sampler = RunConfig['train']['rebalanceSampler'];

/** One training run. */
export interface Job {
  readonly id: string;
  /** Run length; absent in result files written before `--epochs` existed (then `EPOCHS`). */
  readonly epochs?: number;
  readonly ir: number;
  readonly method: JobMethod;
  readonly seed: number;
  readonly alpha: AlphaScheduleName;
  readonly sampler: Sampler;
  /** Classifier learners of decoupling's stage 2 on this job's representation. */
  readonly classifiers: readonly DecoupleStageMethod[];
}

/** The job of these settings (BBN defaults: parabolic decay, reversed sampler). */
export function job(
  ir: number,
  method: JobMethod,
  seed: number,
  opts: { alpha?: AlphaScheduleName; sampler?: Sampler; epochs?: number } = {},
): Job {
  const epochs = opts.epochs ?? EPOCHS;
  const alpha = opts.alpha ?? 'parabolic_decay';
  const sampler = opts.sampler ?? 'reversed';
  const tags = [
    alpha === 'parabolic_decay' ? '' : `-alpha_${alpha}`,
    sampler === 'reversed' ? '' : `-rb_${sampler}`,
  ].join('');
  const classifiers: DecoupleStageMethod[] =
    method === 'ce' || method === 'rw' || method === 'rs'
      ? ir === 100
        ? ['ce', 'rw', 'rs']
        : method === 'ce'
          ? ['rs']
          : []
      : [];
  // 12-epoch jobs keep their original names; other lengths are prefixed (`e200-ir100-bbn-s0`).
  const prefix = epochs === EPOCHS ? '' : `e${epochs}-`;
  return {
    id: `${prefix}ir${ir}-${method}${tags}-s${seed}`,
    epochs,
    ir,
    method,
    seed,
    alpha,
    sampler,
    classifiers,
  };
}

/** A job's run length (`EPOCHS` for result files written before `--epochs` existed). */
export const epochsOf = (j: Job): number => j.epochs ?? EPOCHS;

/** The config overrides of a job (the size, then what the job varies). */
export function overridesOf(j: Job): string[] {
  return [
    ...sizeOf(epochsOf(j)),
    `method=${j.method}`,
    `seed=${j.seed}`,
    `dataset.imbalanceRatio=${j.ir}`,
    `train.alpha.schedule=${j.alpha}`,
    `train.rebalanceSampler=${j.sampler}`,
  ];
}

/** Test accuracy and classifier norms of a trained model. */
export interface Outcome {
  readonly top1: number;
  readonly many: number | null;
  readonly medium: number | null;
  readonly few: number | null;
  readonly perClass: number[];
  readonly weightNorms: { all: number[]; cb?: number[]; rb?: number[] };
}

/** What a finished job writes (`runs/<id>.json`). */
export interface JobResult {
  readonly id: string;
  readonly job: Job;
  readonly command: string;
  readonly overrides: string[];
  readonly date: string;
  readonly trainCounts: number[];
  readonly wallSeconds: number;
  readonly cpuSeconds: number;
  readonly epochs: { epoch: number; alpha: number | null; lr: number; trainLoss: number }[];
  readonly final: Outcome;
  /** Decoupling: the classifier retrained on this representation, per learner. */
  readonly classifiers: Partial<Record<DecoupleStageMethod, Outcome & { seconds: number }>>;
}

type Normed = Parameters<typeof classifierNorms>[0];

function outcome(report: AccuracyReport, model: Normed): Outcome {
  const n = classifierNorms(model);
  const arr = (s: NormStats | undefined) => (s ? Array.from(s.norms) : undefined);
  return {
    top1: report.top1,
    many: report.many,
    medium: report.medium,
    few: report.few,
    perClass: report.perClass,
    weightNorms: { all: Array.from(n.all.norms), cb: arr(n.cb), rb: arr(n.rb) },
  };
}

const dataCache = new Map<number, Promise<LoadedData>>();

/** Trains one job and writes its result file; returns the result. */
export async function runJob(j: Job, command: string): Promise<JobResult> {
  const overrides = overridesOf(j);
  const cfg = loadRunConfig(CONFIG, overrides);
  if (!dataCache.has(j.ir)) dataCache.set(j.ir, loadRunData(cfg));
  const data = await dataCache.get(j.ir)!;
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const model = createModel(modelSpecFor(cfg, data), Rng.fromSeed(cfg.seed).split('init'));
  try {
    const trainer = new Trainer(cfg, data, model);
    const epochs: JobResult['epochs'] = [];
    for (let e = 1; e <= cfg.train.epochs; e++) {
      const r = await trainer.trainEpoch(e);
      epochs.push({ epoch: e, alpha: r.alpha, lr: r.lr, trainLoss: r.trainLoss });
    }
    const final = outcome(await trainer.evaluate(), model);
    const classifiers: JobResult['classifiers'] = {};
    if (j.classifiers.length > 0) {
      const params = model.getParams().slice();
      const buffers = model.getBuffers().slice();
      for (const learner of j.classifiers) {
        const t0 = performance.now();
        model.setParams(params);
        model.setBuffers(buffers);
        const dcfg = loadRunConfig(CONFIG, [
          ...overrides,
          'method=decouple',
          `train.decoupleRepresentation=${j.method}`,
          `train.decoupleClassifier=${learner}`,
        ]);
        const res = await retrainClassifier(dcfg, data, model);
        classifiers[learner] = { ...outcome(res.report, model), seconds: (performance.now() - t0) / 1000 };
      }
    }
    const cpu = process.cpuUsage(cpu0);
    const result: JobResult = {
      id: j.id,
      job: j,
      command,
      overrides,
      date: new Date().toISOString(),
      trainCounts: Array.from(data.trainCounts),
      wallSeconds: (performance.now() - wall0) / 1000,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      epochs,
      final,
      classifiers,
    };
    writeFileSync(join(RUNS, `${j.id}.json`), `${JSON.stringify(result)}\n`);
    return result;
  } finally {
    model.dispose();
  }
}
