/**
 * Long-tail class-count profiles (BBN-SPEC §5.1), the seeded long-tail subsampling of a balanced
 * training set, and the many/medium/few-shot grouping of classes.
 */

import { CoreValueError } from './errors.ts';
import { lnFixed, powWithLn } from './exact-pow.ts';
import type { Rng } from './rng.ts';
import { requireLabels, requirePositive, requirePositiveInt } from './validate.ts';

function checkProfileArgs(where: string, nMax: number, numClasses: number, imbalanceRatio: number): void {
  requirePositive(`${where}: nMax`, nMax);
  requirePositiveInt(`${where}: numClasses`, numClasses);
  if (!(imbalanceRatio >= 1) || !Number.isFinite(imbalanceRatio)) {
    throw new CoreValueError(`${where}: imbalanceRatio (${imbalanceRatio}) must be a finite number >= 1`);
  }
}

function requireNoEmptyClass(where: string, counts: number[], nMax: number, imbalanceRatio: number): void {
  const c = counts.findIndex((n) => n < 1);
  if (c >= 0) {
    throw new CoreValueError(
      `${where}: nMax (${nMax}) with imbalanceRatio (${imbalanceRatio}) leaves class ${c} with ${counts[c]} images; ` +
        'raise nMax or lower imbalanceRatio',
    );
  }
}

/**
 * Exponential long-tail profile of the LDAM/BBN CIFAR generator:
 * `n_i = trunc(nMax · ratio^(i/(C−1)))` with `ratio = 1/imbalanceRatio`, class 0 the head.
 *
 * Mirrors Python's `int(img_max * RATIO ** (i / (C - 1.0)))` operation by operation: `1/IR` is the
 * same double as the config literal (0.01, 0.02, 0.1), `i/(C−1)` and the product are the same IEEE
 * operations, and the power is correctly rounded (see exact-pow.ts) rather than V8's `**`, which
 * differs from Python's in the last ulp for about one value in ten. Reproduces every §5.1 table.
 * `numClasses = 1` gives `[trunc(nMax)]`. Throws `CoreValueError` if a class would get 0 images.
 */
export function exponentialCounts(nMax: number, numClasses: number, imbalanceRatio: number): number[] {
  checkProfileArgs('exponentialCounts', nMax, numClasses, imbalanceRatio);
  if (numClasses === 1) return [Math.trunc(nMax)];
  const ratio = 1 / imbalanceRatio;
  const ln = lnFixed(ratio);
  const counts: number[] = [];
  for (let i = 0; i < numClasses; i++) {
    counts.push(Math.trunc(nMax * powWithLn(ln, i / (numClasses - 1))));
  }
  requireNoEmptyClass('exponentialCounts', counts, nMax, imbalanceRatio);
  return counts;
}

/**
 * Step long-tail profile (LDAM's `step` type): the first `C − m` classes keep `trunc(nMax)` images and
 * the last `m = ceil(C·minorFraction)` classes keep `trunc(nMax · (1/IR))`. With the
 * default fraction 0.5 this is LDAM's split into `floor(C/2)` head classes and the rest as tail
 * (LDAM itself drops the last class when C is odd; we keep it as a tail class). At least one class
 * is always a head class.
 */
export function stepCounts(
  nMax: number,
  numClasses: number,
  imbalanceRatio: number,
  minorFraction = 0.5,
): number[] {
  checkProfileArgs('stepCounts', nMax, numClasses, imbalanceRatio);
  if (!(minorFraction > 0 && minorFraction < 1)) {
    throw new CoreValueError(`stepCounts: minorFraction (${minorFraction}) must lie in (0, 1)`);
  }
  // The tolerance absorbs float noise such as 100·0.29 = 28.999999999999996.
  const minor = Math.ceil(numClasses * minorFraction - 1e-9);
  const major = Math.max(1, numClasses - minor);
  const head = Math.trunc(nMax);
  const tail = Math.trunc(nMax * (1 / imbalanceRatio));
  const counts = Array.from({ length: numClasses }, (_, i) => (i < major ? head : tail));
  requireNoEmptyClass('stepCounts', counts, nMax, imbalanceRatio);
  return counts;
}

/** Number of labels of each class 0..numClasses−1; throws on a label outside that range. */
export function classCounts(labels: ArrayLike<number>, numClasses: number): number[] {
  requirePositiveInt('classCounts: numClasses', numClasses);
  requireLabels('classCounts: labels', labels, numClasses);
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}

/** N_max / N_min of a class-count list; throws on an empty list or a class with no images. */
export function imbalanceRatioOf(counts: readonly number[]): number {
  if (counts.length === 0) throw new CoreValueError('imbalanceRatioOf: counts is empty');
  let max = -Infinity;
  let min = Infinity;
  counts.forEach((n, c) => {
    if (!(n >= 1) || !Number.isFinite(n)) {
      throw new CoreValueError(`imbalanceRatioOf: counts[${c}] (${n}) must be a finite number >= 1`);
    }
    max = Math.max(max, n);
    min = Math.min(min, n);
  });
  return max / min;
}

/**
 * Keeps `counts[c]` images of each class c, as the BBN generator does (BBN-SPEC §5.1): for each class
 * in index order, its dataset positions (ascending, like `np.where`) are shuffled with `rng` and the
 * first `counts[c]` kept. Returns the kept positions sorted ascending. The subset differs from
 * numpy's (different generator) but is fixed by the seed; the counts are exact.
 * Throws `CoreValueError` if a class has fewer images than requested or a label is out of range.
 */
export function subsampleLongTail(
  labels: ArrayLike<number>,
  counts: readonly number[],
  rng: Rng,
): Int32Array {
  const numClasses = counts.length;
  requirePositiveInt('subsampleLongTail: counts.length', numClasses);
  counts.forEach((n, c) => {
    if (!Number.isInteger(n) || n < 0) {
      throw new CoreValueError(`subsampleLongTail: counts[${c}] (${n}) must be an integer >= 0`);
    }
  });
  const have = classCounts(labels, numClasses);
  const byClass = have.map((n) => new Int32Array(n));
  const fill = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]][fill[labels[i]]++] = i;
  const total = counts.reduce((a, b) => a + b, 0);
  const kept = new Int32Array(total);
  let k = 0;
  for (let c = 0; c < numClasses; c++) {
    if (have[c] < counts[c]) {
      throw new CoreValueError(
        `subsampleLongTail: class ${c} has ${have[c]} images but counts[${c}] asks for ${counts[c]}`,
      );
    }
    const idx = rng.shuffle(byClass[c]);
    kept.set(idx.subarray(0, counts[c]), k);
    k += counts[c];
  }
  return kept.sort();
}

/** Many/medium/few-shot group of a class, by its number of training images. */
export type ShotGroup = 'many' | 'medium' | 'few';

/**
 * Group of each class: `many` if its training count is > `manyThreshold` (100), `few` if it is
 * < `fewThreshold` (20), else `medium` (the usual long-tail reporting split).
 */
export function shotGroups(
  trainCounts: readonly number[],
  manyThreshold = 100,
  fewThreshold = 20,
): ShotGroup[] {
  if (!(fewThreshold <= manyThreshold)) {
    throw new CoreValueError(
      `shotGroups: fewThreshold (${fewThreshold}) must be <= manyThreshold (${manyThreshold})`,
    );
  }
  return trainCounts.map((n) => (n > manyThreshold ? 'many' : n < fewThreshold ? 'few' : 'medium'));
}
