/**
 * Evaluation metrics for long-tailed recognition: confusion matrix, top-1, per-class accuracy and
 * many/medium/few-shot means, plus top-k / argmax over a flat logits buffer.
 */

import { CoreValueError } from './errors.ts';
import { type ShotGroup, shotGroups } from './profiles.ts';
import { requireLabels, requirePositiveInt } from './validate.ts';

function checkPairs(
  where: string,
  predictions: ArrayLike<number>,
  labels: ArrayLike<number>,
  numClasses: number,
) {
  requirePositiveInt(`${where}: numClasses`, numClasses);
  if (predictions.length !== labels.length) {
    throw new CoreValueError(
      `${where}: predictions (${predictions.length}) and labels (${labels.length}) must have the same length`,
    );
  }
  requireLabels(`${where}: labels`, labels, numClasses);
  requireLabels(`${where}: predictions`, predictions, numClasses);
}

/** Confusion counts `m[trueClass][predictedClass]`. */
export function confusionMatrix(
  predictions: ArrayLike<number>,
  labels: ArrayLike<number>,
  numClasses: number,
): Int32Array[] {
  checkPairs('confusionMatrix', predictions, labels, numClasses);
  const m = Array.from({ length: numClasses }, () => new Int32Array(numClasses));
  for (let i = 0; i < labels.length; i++) m[labels[i]][predictions[i]]++;
  return m;
}

/** Accuracy summary of one evaluation. Accuracies are fractions in [0, 1]. */
export interface AccuracyReport {
  /** Fraction of all test samples predicted correctly. */
  top1: number;
  /** Accuracy of each class over its test samples; NaN for a class with no test sample. */
  perClass: number[];
  /** Mean per-class accuracy of the many-shot classes (train count > manyThreshold); null if none. */
  many: number | null;
  /** Mean per-class accuracy of the medium-shot classes; null if none. */
  medium: number | null;
  /** Mean per-class accuracy of the few-shot classes (train count < fewThreshold); null if none. */
  few: number | null;
  /** Number of classes averaged into each group mean (classes of the group present in the test set). */
  counts: { many: number; medium: number; few: number };
}

/**
 * Top-1, per-class and many/medium/few-shot accuracy. Groups come from `shotGroups(trainCounts,
 * manyThreshold, fewThreshold)`. A class with no test sample has per-class accuracy NaN and is left
 * out of its group's mean (and of `counts`), so an absent class neither scores 0 nor 1; a group with
 * no test class reports null. Throws on an empty test set or mismatched lengths.
 */
export function accuracyReport(
  predictions: ArrayLike<number>,
  labels: ArrayLike<number>,
  numClasses: number,
  trainCounts: readonly number[],
  manyThreshold = 100,
  fewThreshold = 20,
): AccuracyReport {
  checkPairs('accuracyReport', predictions, labels, numClasses);
  if (labels.length === 0) throw new CoreValueError('accuracyReport: the test set is empty');
  if (trainCounts.length !== numClasses) {
    throw new CoreValueError(
      `accuracyReport: trainCounts has ${trainCounts.length} entries, expected numClasses (${numClasses})`,
    );
  }
  const total = new Array<number>(numClasses).fill(0);
  const right = new Array<number>(numClasses).fill(0);
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    total[labels[i]]++;
    if (predictions[i] === labels[i]) {
      right[labels[i]]++;
      correct++;
    }
  }
  const perClass = total.map((n, c) => (n > 0 ? right[c] / n : Number.NaN));
  const groups = shotGroups(trainCounts, manyThreshold, fewThreshold);
  const sum: Record<ShotGroup, number> = { many: 0, medium: 0, few: 0 };
  const counts: Record<ShotGroup, number> = { many: 0, medium: 0, few: 0 };
  groups.forEach((g, c) => {
    if (total[c] === 0) return;
    sum[g] += perClass[c];
    counts[g]++;
  });
  const mean = (g: ShotGroup) => (counts[g] > 0 ? sum[g] / counts[g] : null);
  return {
    top1: correct / labels.length,
    perClass,
    many: mean('many'),
    medium: mean('medium'),
    few: mean('few'),
    counts,
  };
}

function rows(where: string, logits: Float32Array, numClasses: number): number {
  requirePositiveInt(`${where}: numClasses`, numClasses);
  if (logits.length % numClasses !== 0) {
    throw new CoreValueError(
      `${where}: logits length (${logits.length}) is not a multiple of numClasses (${numClasses})`,
    );
  }
  return logits.length / numClasses;
}

/** `v` ranks above `w`: larger first, NaN below every number. */
function above(v: number, w: number): boolean {
  return v > w || (Number.isNaN(w) && !Number.isNaN(v));
}

/**
 * The k highest-scoring classes of each row of a row-major `[rows, numClasses]` logits buffer,
 * best first; ties go to the lower class index and NaN ranks last.
 */
export function topK(logits: Float32Array, numClasses: number, k: number): Int32Array[] {
  const n = rows('topK', logits, numClasses);
  requirePositiveInt('topK: k', k);
  if (k > numClasses) throw new CoreValueError(`topK: k (${k}) must be <= numClasses (${numClasses})`);
  const out: Int32Array[] = [];
  for (let r = 0; r < n; r++) {
    const base = r * numClasses;
    const best = new Int32Array(k);
    let filled = 0;
    for (let c = 0; c < numClasses; c++) {
      const v = logits[base + c];
      if (filled === k && !above(v, logits[base + best[k - 1]])) continue;
      // Insertion into the sorted prefix; strict `above` keeps the earlier (lower) class on ties.
      let j = filled < k ? filled++ : k - 1;
      while (j > 0 && above(v, logits[base + best[j - 1]])) {
        best[j] = best[j - 1];
        j--;
      }
      best[j] = c;
    }
    out.push(best);
  }
  return out;
}

/** The top-1 class of each row of a row-major `[rows, numClasses]` logits buffer (ties: lower index). */
export function argmax(logits: Float32Array, numClasses: number): Int32Array {
  const n = rows('argmax', logits, numClasses);
  const out = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const base = r * numClasses;
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (above(logits[base + c], logits[base + best])) best = c;
    out[r] = best;
  }
  return out;
}
