/**
 * The cumulative-learning adaptor α ("l" in the official code), BBN-SPEC §2.1, in the code's
 * convention: `t = (epoch − 1) / divEpoch`, so α(1) = 1 exactly and α(last epoch) > 0.
 * α is one value per epoch except for `beta`, which is drawn per batch.
 */
import type { AlphaScheduleName } from './config.ts';
import { CoreValueError } from './errors.ts';
import type { Rng } from './rng.ts';
import { requirePositive, requirePositiveInt } from './validate.ts';

/**
 * The official divisor of (epoch − 1): `100·(floor(E/100) + 1)` for E in {90, 180} (giving 100 and
 * 200, so α never drops below about 0.2 on iNat), else E itself.
 */
export function divEpoch(maxEpoch: number): number {
  requirePositiveInt('divEpoch: maxEpoch', maxEpoch);
  return maxEpoch === 90 || maxEpoch === 180 ? 100 * (Math.floor(maxEpoch / 100) + 1) : maxEpoch;
}

/** What `alphaAt` needs; mirrors `train.alpha` of the run config plus the run length. */
export interface AlphaOptions {
  /** Which of the §2.1 schedules. */
  schedule: AlphaScheduleName;
  /** Number of training epochs E. */
  maxEpoch: number;
  /** Divisor of (epoch − 1); `auto` or absent uses `divEpoch(maxEpoch)`. */
  divEpoch?: number | 'auto';
  /** `separated` only: last epoch with α = 1 (default 120). */
  separateEpoch?: number;
  /** `beta` only: shape a = b of Beta(a, b) (default 0.2). */
  betaShape?: number;
}

/** True for schedules drawn per batch (only `beta`); the others are constant within an epoch. */
export function isPerBatchAlpha(schedule: AlphaScheduleName): boolean {
  return schedule === 'beta';
}

/**
 * α for a 1-based `epoch`, with `t = (epoch − 1)/div` clamped to [0, 1] (so a divisor shorter than
 * the run holds the end value instead of leaving the schedule's range):
 * parabolic_decay `1 − t²`, linear_decay `1 − t`, cosine_decay `cos(t·π/2)`, parabolic_increment
 * `t²`, equal `0.5`, separated `epoch <= separateEpoch ? 1 : 0`, beta a fresh `Beta(a, a)` draw from
 * `rng` (required; call once per batch). The result is clamped into [0, 1].
 */
export function alphaAt(epoch: number, opts: AlphaOptions, rng?: Rng): number {
  requirePositiveInt('alphaAt: epoch', epoch);
  const div =
    opts.divEpoch === undefined || opts.divEpoch === 'auto' ? divEpoch(opts.maxEpoch) : opts.divEpoch;
  requirePositiveInt('alphaAt: divEpoch', div);
  const t = Math.min(1, (epoch - 1) / div);
  let a: number;
  switch (opts.schedule) {
    case 'parabolic_decay':
      a = 1 - t * t;
      break;
    case 'linear_decay':
      a = 1 - t;
      break;
    case 'cosine_decay':
      a = Math.cos((t * Math.PI) / 2);
      break;
    case 'parabolic_increment':
      a = t * t;
      break;
    case 'equal':
      a = 0.5;
      break;
    case 'separated': {
      const last = opts.separateEpoch ?? 120;
      requirePositiveInt('alphaAt: separateEpoch', last);
      a = epoch <= last ? 1 : 0;
      break;
    }
    case 'beta': {
      if (!rng) throw new CoreValueError('alphaAt: schedule beta draws α per batch and needs an rng');
      const shape = opts.betaShape ?? 0.2;
      requirePositive('alphaAt: betaShape', shape);
      a = rng.beta(shape, shape);
      break;
    }
    default:
      throw new CoreValueError(`alphaAt: unknown alpha schedule (${String(opts.schedule)})`);
  }
  return Math.min(1, Math.max(0, a));
}
