/**
 * Learning rate per epoch (BBN-SPEC §6), as the official schedulers compute it under the pinned
 * torch 1.0.1.
 *
 * Epoch convention: during 1-based epoch e the scheduler's `last_epoch` is k = e − 1, because
 * torch 1.0.1's `_LRScheduler.__init__` calls `step(0)` and resets `last_epoch = −1`, and the
 * training loop calls `scheduler.step()` at the start of every epoch. Under torch >= 1.1 the same
 * code gives k = e (the first value is skipped and the decays move one epoch earlier, to 120 and
 * 160); we follow 1.0.1, the authors' environment, which yields the §9.10 numbers.
 */
import type { LrScheduleName } from './config.ts';
import { CoreValueError } from './errors.ts';
import { powCorrectlyRounded } from './exact-pow.ts';
import {
  requireNonNegative,
  requireNonNegativeInt,
  requirePositive,
  requirePositiveInt,
} from './validate.ts';

/** What `lrAt` needs; mirrors `train.lr`, `train.epochs` and `train.lrSchedule` of the run config. */
export interface LrOptions {
  /** `warmup_multistep` (CIFAR), `multistep` (iNat) or `cosine`. */
  name: LrScheduleName;
  /** Base learning rate (0.1 CIFAR, 0.05 iNat). */
  baseLr: number;
  /** Number of training epochs (T_max of `cosine`). */
  maxEpoch: number;
  /** Epochs (as values of k) at which the multistep schedules multiply by `gamma`; ascending. */
  milestones: readonly number[];
  /** Multistep decay factor (0.01 CIFAR, 0.1 iNat). */
  gamma: number;
  /** `warmup_multistep` only: number of linear warm-up epochs (5). */
  warmupEpochs: number;
  /** `warmup_multistep` only: start factor of the warm-up (1/3). */
  warmupFactor: number;
  /** `cosine` only: the floor eta_min. */
  etaMin: number;
}

/** Python's `bisect.bisect_right`: how many milestones are <= k. */
function bisectRight(milestones: readonly number[], k: number): number {
  let n = 0;
  for (const m of milestones) if (m <= k) n++;
  return n;
}

/**
 * The learning rate of 1-based `epoch` (k = epoch − 1, see the module note):
 * - `warmup_multistep`: `baseLr · warm(k) · gamma^bisect_right(milestones, k)` with
 *   `warm(k) = warmupFactor·(1 − k/W) + k/W` for k < W, else 1 (WarmupMultiStepLR, linear);
 * - `multistep`: the same with warm = 1 (MultiStepLR);
 * - `cosine`: `etaMin + (baseLr − etaMin)·(1 + cos(π·k/maxEpoch))/2` (CosineAnnealingLR closed form,
 *   T_max = maxEpoch; milestones and warm-up are not used).
 */
export function lrAt(epoch: number, opts: LrOptions): number {
  requirePositiveInt('lrAt: epoch', epoch);
  requirePositive('lrAt: baseLr', opts.baseLr);
  const k = epoch - 1;
  switch (opts.name) {
    case 'warmup_multistep':
    case 'multistep': {
      requirePositive('lrAt: gamma', opts.gamma);
      opts.milestones.forEach((m, i) => {
        if (!Number.isFinite(m) || (i > 0 && !(m > opts.milestones[i - 1]))) {
          throw new CoreValueError(
            `lrAt: milestones (${opts.milestones.join(',')}) must be strictly increasing`,
          );
        }
      });
      let warm = 1;
      if (opts.name === 'warmup_multistep') {
        requireNonNegativeInt('lrAt: warmupEpochs', opts.warmupEpochs);
        requirePositive('lrAt: warmupFactor', opts.warmupFactor);
        if (k < opts.warmupEpochs) {
          const a = k / opts.warmupEpochs;
          warm = opts.warmupFactor * (1 - a) + a;
        }
      }
      // Python's float ** int calls C pow; the correctly rounded power keeps the values bit-equal.
      return opts.baseLr * warm * powCorrectlyRounded(opts.gamma, bisectRight(opts.milestones, k));
    }
    case 'cosine':
      requirePositiveInt('lrAt: maxEpoch', opts.maxEpoch);
      requireNonNegative('lrAt: etaMin', opts.etaMin);
      return opts.etaMin + ((opts.baseLr - opts.etaMin) * (1 + Math.cos((Math.PI * k) / opts.maxEpoch))) / 2;
    default:
      throw new CoreValueError(`lrAt: unknown lr schedule (${String(opts.name)})`);
  }
}
