/**
 * The coordinator's data policy for one epoch: the global uniform order and the paired reversed
 * draws (BBN-SPEC §4), cut into per-rank shards.
 *
 * A plan depends only on (seed, epoch, labels, global batch, rebalance kind), never on the number
 * of workers, so a restarted coordinator reproduces it and any world size trains on the same
 * global batches (ARCHITECTURE "World-size invariance").
 */
import { CoreValueError } from './errors.ts';
import { Rng } from './rng.ts';
import { ClassIndex, createRebalanceSampler, type RebalanceKind, uniformEpochOrder } from './samplers.ts';
import { requireLabels, requireNonNegativeInt, requirePositiveInt } from './validate.ts';

/** Everything a plan is derived from. */
export interface EpochPlanInput {
  /** Run seed. */
  seed: number;
  /** 1-based epoch. */
  epoch: number;
  /** Training label of every dataset position. */
  labels: ArrayLike<number>;
  /** Number of classes C. */
  numClasses: number;
  /** Global (uniform) batch size B; the reversed batch has the same size. */
  globalBatch: number;
  /** Re-balancing branch sampler, or `none` for single-branch methods. */
  rebalance: RebalanceKind | 'none';
}

/** One epoch's global batches: step s uses rows `[s·B, (s+1)·B)` of both arrays. */
export interface EpochPlan {
  /** 1-based epoch. */
  epoch: number;
  /** Iterations this epoch, floor(N/B). */
  steps: number;
  /** Global batch size B. */
  globalBatch: number;
  /** Dataset positions of the uniform batches, a drop-last prefix of a permutation; length steps·B. */
  uniform: Int32Array;
  /** Dataset positions of the re-balancing batches, row i paired with `uniform[i]`; empty for `none`. */
  reversed: Int32Array;
}

/** The rows of one step that one rank trains on. */
export interface Shard {
  /** This rank, 0-based. */
  rank: number;
  /** Number of ranks. */
  worldSize: number;
  /** 0-based step within the epoch. */
  step: number;
  /** First row of this shard within the global batch. */
  offset: number;
  /** Uniform dataset positions of this shard (a copy). */
  uniform: Int32Array;
  /** Reversed dataset positions of this shard, paired row by row (a copy; empty for `none`). */
  reversed: Int32Array;
}

/**
 * Plans one epoch. The streams are `Rng.fromSeed(seed).split('plan').split(epoch)` then
 * `.split('uniform')` for `uniformEpochOrder(N, B, ·)` and `.split('reversed')` for the
 * `steps·B` reversed draws, taken in row order. Throws `CoreValueError` if B > N, a label is out of
 * range, or (with a rebalance sampler) a class has no image.
 */
export function planEpoch(input: EpochPlanInput): EpochPlan {
  const { seed, epoch, labels, numClasses, globalBatch, rebalance } = input;
  requirePositiveInt('planEpoch: epoch', epoch);
  requirePositiveInt('planEpoch: numClasses', numClasses);
  requirePositiveInt('planEpoch: globalBatch', globalBatch);
  if (!Number.isFinite(seed)) throw new CoreValueError(`planEpoch: seed (${seed}) must be a finite number`);
  const base = Rng.fromSeed(seed).split('plan').split(epoch);
  const uniform = uniformEpochOrder(labels.length, globalBatch, base.split('uniform'));
  const steps = uniform.length / globalBatch;
  let reversed = new Int32Array(0);
  if (rebalance === 'none') {
    requireLabels('planEpoch: labels', labels, numClasses);
  } else {
    const sampler = createRebalanceSampler(rebalance, new ClassIndex(labels, numClasses));
    const rng = base.split('reversed');
    reversed = new Int32Array(uniform.length);
    for (let i = 0; i < reversed.length; i++) reversed[i] = sampler.draw(rng);
  }
  return { epoch, steps, globalBatch, uniform, reversed };
}

/**
 * Rank `rank`'s contiguous rows of each global batch: `floor(B/W)` rows each, and the `B mod W`
 * remainder rows one each to the lowest ranks. Throws if `worldSize > globalBatch` (a rank would
 * get no row) or `rank` is outside [0, worldSize).
 */
export function shardRange(
  globalBatch: number,
  rank: number,
  worldSize: number,
): { offset: number; size: number } {
  requirePositiveInt('shardRange: globalBatch', globalBatch);
  requirePositiveInt('shardRange: worldSize', worldSize);
  if (worldSize > globalBatch) {
    throw new CoreValueError(
      `shardRange: worldSize (${worldSize}) exceeds globalBatch (${globalBatch}); every rank needs at least one row`,
    );
  }
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new CoreValueError(`shardRange: rank (${rank}) must be an integer in [0, ${worldSize})`);
  }
  const base = Math.floor(globalBatch / worldSize);
  const extra = globalBatch % worldSize;
  return { offset: rank * base + Math.min(rank, extra), size: base + (rank < extra ? 1 : 0) };
}

/** Rank `rank`'s rows of 0-based `step` of `plan` (see `shardRange`). */
export function shardOf(plan: EpochPlan, step: number, rank: number, worldSize: number): Shard {
  requireNonNegativeInt('shardOf: step', step);
  if (step >= plan.steps) {
    throw new CoreValueError(`shardOf: step (${step}) must be < the epoch's steps (${plan.steps})`);
  }
  const { offset, size } = shardRange(plan.globalBatch, rank, worldSize);
  const start = step * plan.globalBatch + offset;
  const reversed = plan.reversed.length > 0 ? plan.reversed.slice(start, start + size) : new Int32Array(0);
  return { rank, worldSize, step, offset, uniform: plan.uniform.slice(start, start + size), reversed };
}

/**
 * A short stable hash of a plan (16 hex digits: FNV-1a and a multiplicative mix over the header and
 * every index), to check that processes hold the same plan without sending it.
 */
export function planDigest(plan: EpochPlan): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  const word = (w: number) => {
    for (let b = 0; b < 32; b += 8) h1 = Math.imul(h1 ^ ((w >>> b) & 0xff), 0x01000193);
    h2 = Math.imul(h2 ^ w, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  };
  word(plan.epoch);
  word(plan.steps);
  word(plan.globalBatch);
  word(plan.uniform.length);
  word(plan.reversed.length);
  for (let i = 0; i < plan.uniform.length; i++) word(plan.uniform[i]);
  for (let i = 0; i < plan.reversed.length; i++) word(plan.reversed[i]);
  const hex = (h: number) => (h >>> 0).toString(16).padStart(8, '0');
  return hex(h1) + hex(h2);
}
