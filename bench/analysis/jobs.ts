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
 * The epochs of every job, in the paper's shape: one warm-up epoch, lr decays after 58 % and 83 %
 * of the epochs (the paper's 60 % and 80 %: 120 and 160 of 200), parabolic α with the divisor E,
 * so α first falls to 0.5 or below at epoch 10 of 12 (the paper's 143 of 200). What fits the
 * shared 2-core machine with three seeds of every job (docs/analysis.md).
 */
export const EPOCHS = 12;

/**
 * The size every job trains at, on top of configs/mnist-lt.yaml: ResNet-8 width 4, 12 epochs,
 * lr ×0.1 after epochs 7 and 10, DRW from the last lr stage (epoch 11, as LDAM-DRW's 160 of
 * 200), 3 classifier-retraining epochs, the separated α stage switching after epoch 7 (the
 * official 120 of 200), one compute thread.
 */
export const SIZE = [
  'model.depth=8',
  'model.baseWidth=4',
  `train.epochs=${EPOCHS}`,
  'train.lrSchedule.milestones=[7,10]',
  'train.drwStartEpoch=11',
  'train.decoupleEpochs=3',
  'train.alpha.separateEpoch=7',
  'compute.threads=1',
] as const;

export type JobMethod = 'ce' | 'rw' | 'rs' | 'drw' | 'bbn';
export type Sampler = RunConfig['train']['rebalanceSampler'];

/** One training run. */
export interface Job {
  readonly id: string;
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
  opts: { alpha?: AlphaScheduleName; sampler?: Sampler } = {},
): Job {
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
  return { id: `ir${ir}-${method}${tags}-s${seed}`, ir, method, seed, alpha, sampler, classifiers };
}

/** The config overrides of a job (the size, then what the job varies). */
export function overridesOf(j: Job): string[] {
  return [
    ...SIZE,
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
