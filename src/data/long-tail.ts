/**
 * Turns a balanced training pool into a long-tailed training set: class counts from the exp or
 * step profile (BBN-SPEC §5.1), then a seeded per-class subsample (`subsampleLongTail`).
 */
import { classCounts, exponentialCounts, stepCounts, subsampleLongTail } from '../core/profiles.ts';
import { Rng } from '../core/rng.ts';
import { DataError, type ImageDataset } from './api.ts';
import { subset } from './memory.ts';

/** The dataset-config fields that shape the long tail. */
export interface LongTailOptions {
  readonly profile: 'exp' | 'step';
  /** N_max / N_min (1 keeps the pool balanced at nMax per class). */
  readonly imbalanceRatio: number;
  /** Step profile only: fraction of the classes that are minority classes. */
  readonly stepMinorFraction: number;
  /** Seed of the subsample (`Rng.fromSeed(subsampleSeed)`); the official code uses 0. */
  readonly subsampleSeed: number;
}

/** Per-class target counts of the profile, class 0 the head. */
export function longTailCounts(nMax: number, numClasses: number, opts: LongTailOptions): number[] {
  return opts.profile === 'exp'
    ? exponentialCounts(nMax, numClasses, opts.imbalanceRatio)
    : stepCounts(nMax, numClasses, opts.imbalanceRatio, opts.stepMinorFraction);
}

/** A long-tailed training set made from a pool, with its counts and a one-line description. */
export interface LongTailResult {
  readonly train: ImageDataset;
  readonly counts: number[];
  readonly profile: string;
}

/**
 * Subsamples `pool` to the profile's counts (the result is named `name`). `nMax` (the head class's count) defaults to the
 * smallest class's pool size, so every class can supply its count; CIFAR passes the pool's mean,
 * 50000 / C for the full sets, the official `img_max = len(data) / cls_num`. A class with fewer
 * images than its count gives all it has (the official slicing), and the profile line says which.
 */
export function applyLongTail(
  pool: ImageDataset,
  opts: LongTailOptions,
  { nMax, name = `${pool.name}-lt` }: { nMax?: number; name?: string } = {},
): LongTailResult {
  const available = classCounts(pool.labels, pool.numClasses);
  const smallest = Math.min(...available);
  if (smallest === 0) {
    const empty = available.flatMap((n, c) => (n === 0 ? [c] : []));
    throw new DataError(
      `${pool.name}: class${empty.length > 1 ? 'es' : ''} ${listIds(empty)} ha${empty.length > 1 ? 've' : 's'} ` +
        'no training images, so no long-tail profile can be drawn; check the data files',
    );
  }
  const head = nMax ?? smallest;
  let counts: number[];
  try {
    counts = longTailCounts(head, pool.numClasses, opts);
  } catch (err) {
    throw new DataError(
      `cannot draw the long tail of ${pool.name} (dataset.imbalanceRatio ${opts.imbalanceRatio}): ${(err as Error).message}`,
      {},
      { cause: err },
    );
  }
  // A class with fewer images than the profile asks for gives all it has, as the official code's
  // `idx[:the_img_num]` does (real CIFAR binaries whose classes differ in size).
  const short = counts.flatMap((want, c) => (want > available[c] ? [c] : []));
  for (const c of short) counts[c] = available[c];
  const kept = subsampleLongTail(pool.labels, counts, Rng.fromSeed(opts.subsampleSeed));
  const ir = Number.isInteger(opts.imbalanceRatio)
    ? String(opts.imbalanceRatio)
    : opts.imbalanceRatio.toFixed(2);
  const step = opts.profile === 'step' ? `, minor fraction ${opts.stepMinorFraction}` : '';
  const took =
    short.length > 0 ? `; class${short.length > 1 ? 'es' : ''} ${listIds(short)} had fewer and gave all` : '';
  const train = subset(pool, kept, name);
  return {
    train,
    counts: classCounts(train.labels, pool.numClasses),
    profile: `${opts.profile} profile, imbalance ratio ${ir}${step}, nMax ${head}, subsample seed ${opts.subsampleSeed}${took}`,
  };
}

/** `0, 3, 7` or `0, 3, 7, … (12 in all)` for long lists. */
export function listIds(ids: readonly number[], max = 10): string {
  const head = ids.slice(0, max).join(', ');
  return ids.length > max ? `${head}, … (${ids.length} in all)` : head;
}
