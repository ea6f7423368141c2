/**
 * BBN's samplers (BBN-SPEC §4): the uniform epoch order of the conventional branch and the
 * re-balancing samplers (reversed, balanced, uniform-instance) of the re-balancing branch.
 * All randomness comes from an `Rng` passed in, so every draw is reproducible from the run seed.
 */
import { CoreValueError } from './errors.ts';
import type { Rng } from './rng.ts';
import { requireLabels, requirePositiveInt } from './validate.ts';

/** Which sampler feeds BBN's re-balancing branch (BBN-SPEC §4.2; `reversed` is the paper's). */
export type RebalanceKind = 'reversed' | 'balanced' | 'uniform';

/** The rebalance kinds, for validation and iteration. */
export const REBALANCE_KINDS: readonly RebalanceKind[] = ['reversed', 'balanced', 'uniform'];

/** Per-class lists of dataset positions (the official code's `class_dict`). */
export class ClassIndex {
  /** Number of classes C. */
  readonly numClasses: number;
  /** Images per class, N_c (all >= 1). */
  readonly counts: number[];
  /** Total number of images N. */
  readonly size: number;
  /** Positions of class c, ascending; never mutated after construction. */
  private readonly lists: Int32Array[];

  /**
   * Indexes `labels` (position i has class `labels[i]`). Throws `CoreValueError` naming the position
   * of a label outside [0, numClasses) or the first class with no image, since the reversed
   * weights N_max/N_c and the within-class draw are undefined for an empty class.
   */
  constructor(labels: ArrayLike<number>, numClasses: number) {
    requirePositiveInt('ClassIndex: numClasses', numClasses);
    requireLabels('ClassIndex: labels', labels, numClasses);
    const counts = new Array<number>(numClasses).fill(0);
    for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
    const empty = counts.indexOf(0);
    if (empty >= 0) {
      throw new CoreValueError(
        `ClassIndex: class ${empty} has no images (of ${numClasses} classes, ${labels.length} labels); ` +
          'every class needs at least one training image',
      );
    }
    this.lists = counts.map((n) => new Int32Array(n));
    const fill = new Array<number>(numClasses).fill(0);
    for (let i = 0; i < labels.length; i++) this.lists[labels[i]][fill[labels[i]]++] = i;
    this.numClasses = numClasses;
    this.counts = counts;
    this.size = labels.length;
  }

  /** Dataset positions of class c, ascending. The array is shared: do not modify it. */
  indicesOf(c: number): Int32Array {
    if (!Number.isInteger(c) || c < 0 || c >= this.numClasses) {
      throw new CoreValueError(
        `ClassIndex.indicesOf: class (${c}) must be an integer in [0, ${this.numClasses})`,
      );
    }
    return this.lists[c];
  }
}

/** Reversed-sampler weights `w_c = N_max / N_c` (BBN-SPEC §4.2); throws on an empty or zero count. */
export function reversedWeights(counts: readonly number[]): number[] {
  if (counts.length === 0) throw new CoreValueError('reversedWeights: counts is empty');
  counts.forEach((n, c) => {
    if (!(n > 0) || !Number.isFinite(n)) {
      throw new CoreValueError(
        `reversedWeights: counts[${c}] (${n}) must be > 0 (an empty class has no weight)`,
      );
    }
  });
  const max = Math.max(...counts);
  return counts.map((n) => max / n);
}

/**
 * Running sums of `weights` and their total S, both by the same plain left-to-right loop
 * (BBN-SPEC §4.2): the last cumulative sum then equals S bit for bit, which is what guarantees
 * that `inverseCdfPick` finds a class for every u < 1.
 */
export function cumulativeWeights(weights: readonly number[]): { cumulative: number[]; total: number } {
  const cumulative: number[] = [];
  let run = 0;
  for (const w of weights) {
    run += w;
    cumulative.push(run);
  }
  let total = 0;
  for (const w of weights) total += w;
  return { cumulative, total };
}

/**
 * The first class i with `u·total <= cumulative[i]` (the official loop's rule), or the last class if
 * none qualifies. A binary search gives the same answer as the linear walk because the sums are
 * non-decreasing, and keeps iNat's 8,142 classes cheap.
 */
export function inverseCdfPick(cumulative: readonly number[], total: number, u: number): number {
  const n = cumulative.length;
  if (n === 0) throw new CoreValueError('inverseCdfPick: cumulative is empty');
  const r = u * total;
  let lo = 0;
  let hi = n - 1;
  if (!(r <= cumulative[hi])) return hi;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (r <= cumulative[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Probability of drawing each class under a rebalance kind: `w_c/S`, `1/C`, or `N_c/N`. */
export function classProbabilities(kind: RebalanceKind, counts: readonly number[]): number[] {
  switch (kind) {
    case 'reversed': {
      const w = reversedWeights(counts);
      const { total } = cumulativeWeights(w);
      return w.map((x) => x / total);
    }
    case 'balanced':
      if (counts.length === 0) throw new CoreValueError('classProbabilities: counts is empty');
      return counts.map(() => 1 / counts.length);
    case 'uniform': {
      const n = counts.reduce((a, b) => a + b, 0);
      if (!(n > 0))
        throw new CoreValueError(`classProbabilities: counts sum to ${n}; need at least one image`);
      return counts.map((x) => x / n);
    }
    default:
      throw new CoreValueError(`classProbabilities: unknown rebalance kind (${String(kind)})`);
  }
}

/** Draws one dataset position per call. */
export interface IndexSampler {
  /** The next dataset position, drawn from `rng`. */
  draw(rng: Rng): number;
}

/**
 * The re-balancing branch's sampler over `index` (BBN-SPEC §4.2), each draw independent:
 * - `reversed`: class by inverse CDF on `w_c = N_max/N_c` with `u = rng.random()`, then a uniform
 *   image of that class with replacement (`rng.int`);
 * - `balanced`: class uniform (`rng.int(C)`), then a uniform image of that class;
 * - `uniform`: a uniform image of the whole set with replacement (`rng.int(N)`).
 */
export function createRebalanceSampler(kind: RebalanceKind, index: ClassIndex): IndexSampler {
  const inClass = (c: number, rng: Rng): number => {
    const list = index.indicesOf(c);
    return list[rng.int(list.length)];
  };
  switch (kind) {
    case 'reversed': {
      const { cumulative, total } = cumulativeWeights(reversedWeights(index.counts));
      return { draw: (rng) => inClass(inverseCdfPick(cumulative, total, rng.random()), rng) };
    }
    case 'balanced':
      return { draw: (rng) => inClass(rng.int(index.numClasses), rng) };
    case 'uniform':
      return { draw: (rng) => rng.int(index.size) };
    default:
      throw new CoreValueError(`createRebalanceSampler: unknown rebalance kind (${String(kind)})`);
  }
}

/**
 * One epoch of the conventional branch (BBN-SPEC §4.1): a permutation of 0..n−1 truncated to
 * `floor(n/batchSize)·batchSize` positions (drop-last), so `length / batchSize` is the number of
 * iterations. Throws if `batchSize > n`, which would leave an epoch with no step.
 */
export function uniformEpochOrder(n: number, batchSize: number, rng: Rng): Int32Array {
  requirePositiveInt('uniformEpochOrder: n', n);
  requirePositiveInt('uniformEpochOrder: batchSize', batchSize);
  if (batchSize > n) {
    throw new CoreValueError(
      `uniformEpochOrder: batchSize (${batchSize}) exceeds the number of images (${n}); an epoch would have no step`,
    );
  }
  const perm = rng.permutation(n);
  const keep = Math.floor(n / batchSize) * batchSize;
  return keep === n ? perm : perm.slice(0, keep);
}
