/**
 * `loadData`: the one entry point from a run config's `dataset` section to train and test sets.
 * The long-tail profile is applied to the training set of mnist, cifar and synthetic data; iNat is
 * long-tailed already and used as is; test sets stay balanced and untouched.
 */
import { resolve } from 'node:path';
import type { RunConfig } from '../core/config.ts';
import { classCounts } from '../core/profiles.ts';
import type { ImageDataset, LoadedData } from './api.ts';
import { augmentSpecFor } from './augment.ts';
import { loadCifar } from './cifar.ts';
import { loadInat } from './inat.ts';
import { applyLongTail, type LongTailOptions } from './long-tail.ts';
import { loadMnistAll, splitMnist } from './mnist.ts';
import { makeSynthetic } from './synthetic.ts';

/** Options of `loadData`. */
export interface LoadDataOptions {
  /** Directory that relative `root`, `trainJson` and `valJson` are resolved against (default: cwd). */
  readonly baseDir?: string;
}

/** Dataset section of a validated run config. */
export type DatasetConfig = RunConfig['dataset'];

/**
 * Loads the data set `cfg` names. Rejects with `DataError` (missing/corrupt files, bad labels,
 * impossible profile) naming the file and what to do.
 */
export async function loadData(cfg: DatasetConfig, opts: LoadDataOptions = {}): Promise<LoadedData> {
  const base = opts.baseDir ?? process.cwd();
  const augment = augmentSpecFor(cfg);
  const lt: LongTailOptions = {
    profile: cfg.profile,
    imbalanceRatio: cfg.imbalanceRatio,
    stepMinorFraction: cfg.stepMinorFraction,
    subsampleSeed: cfg.subsampleSeed,
  };
  const longTail = (pool: ImageDataset, test: ImageDataset, name: string, nMax?: number): LoadedData => {
    const r = applyLongTail(pool, lt, { name, nMax });
    return { train: r.train, test, trainCounts: r.counts, profile: r.profile, augment };
  };
  switch (cfg.kind) {
    case 'mnist': {
      const { pool, test } = splitMnist(loadMnistAll(), cfg.testPerClass, cfg.subsampleSeed);
      return longTail(pool, test, 'mnist-lt');
    }
    case 'cifar10':
    case 'cifar100': {
      const { train, test } = await loadCifar(cfg.kind, resolve(base, cfg.root ?? '.'));
      // The official generator's img_max = len(data) / C: 5000 (CIFAR-10) or 500 (CIFAR-100).
      return longTail(train, test, `${cfg.kind}-lt`, train.size / train.numClasses);
    }
    case 'synthetic': {
      const { train, test } = makeSynthetic({
        numClasses: cfg.numClasses ?? 10,
        perClass: cfg.perClass ?? 100,
        testPerClass: cfg.testPerClass,
        imageSize: cfg.imageSize,
        channels: cfg.channels,
      });
      return longTail(train, test, 'synthetic-lt');
    }
    case 'inat': {
      const root = resolve(base, cfg.root ?? '.');
      const { train, test } = await loadInat(
        resolve(base, cfg.trainJson ?? ''),
        resolve(base, cfg.valJson ?? ''),
        root,
      );
      return {
        train,
        test,
        trainCounts: classCounts(train.labels, train.numClasses),
        profile: 'as given by the annotation file (dataset.profile and imbalanceRatio do not apply to inat)',
        augment,
      };
    }
  }
}
