/**
 * The epoch plans a coordinator serves, derived from (seed, config, labels) alone: a restarted
 * coordinator serves the identical plans, and the plans do not depend on the world size.
 *
 * The plan and the α/lr are exactly what the single-process trainer computes (`planFor`,
 * `epochSchedule`), so a distributed run trains on the same global batches as `bbn train`.
 */
import {
  epochPolicy,
  epochSchedule,
  type EpochPlan as GlobalPlan,
  planDigest,
  planFor,
  shardRange,
  totalEpochs,
} from '../core/index.ts';
import { type CoordinatorRun, InvalidRequestError } from './api.ts';

/** The per-epoch summary every rank and both branches use (proto EpochPlan, minus run/generation). */
export interface EpochSummary {
  readonly epoch: number;
  /** Cumulative-learning α; NaN for single-branch methods (no α). */
  readonly alpha: number;
  readonly lr: number;
  readonly steps: number;
  readonly globalBatch: number;
  readonly worldSize: number;
  /** Rows of the lowest ranks (⌈B/W⌉); ranks ≥ B mod W get one fewer when W does not divide B. */
  readonly perRankBatch: number;
  /** Lower-case hex SHA-256 of the global batch sequence (independent of the world size). */
  readonly planDigest: string;
}

/** One rank's part of one step. */
export interface ShardRows {
  readonly epoch: number;
  readonly step: number;
  readonly uniform: Int32Array;
  readonly reversed: Int32Array;
  readonly planDigest: string;
}

/** Global plans kept in memory; anything evicted is re-derived on demand. */
const CACHE_SIZE = 4;

/** Serves the plans of one run. */
export class PlanBook {
  /** Small LRU of derived plans: epoch → plan and digest. Pure cache; never the source of truth. */
  private readonly cache = new Map<number, { plan: GlobalPlan; digest: string }>();
  private readonly counts: number[];
  /** Last epoch of the run (decoupling adds its second stage). */
  readonly lastEpoch: number;

  constructor(private readonly run: CoordinatorRun) {
    this.counts = new Array<number>(run.numClasses).fill(0);
    for (let i = 0; i < run.labels.length; i++) {
      const y = run.labels[i];
      if (!Number.isInteger(y) || y < 0 || y >= run.numClasses) {
        throw new InvalidRequestError(`labels[${i}] (${y}) must be an integer in [0, ${run.numClasses})`);
      }
      this.counts[y]++;
    }
    this.lastEpoch = totalEpochs(run.cfg);
  }

  /** Throws INVALID_ARGUMENT unless `epoch` is an epoch of the run. */
  checkEpoch(field: string, epoch: number): void {
    if (!Number.isInteger(epoch) || epoch < 1 || epoch > this.lastEpoch) {
      throw new InvalidRequestError(`${field} (${epoch}) must be in [1, ${this.lastEpoch}]`);
    }
  }

  /** The global plan of `epoch` and its digest (world-size independent). */
  global(epoch: number): { plan: GlobalPlan; digest: string } {
    this.checkEpoch('epoch', epoch);
    const hit = this.cache.get(epoch);
    if (hit) {
      this.cache.delete(epoch);
      this.cache.set(epoch, hit);
      return hit;
    }
    const { cfg, labels, numClasses } = this.run;
    const plan = planFor(cfg, epochPolicy(cfg, epoch, this.counts), epoch, labels, numClasses);
    // The one plan digest (core's), as every durable rank computes it.
    const entry = { plan, digest: planDigest(plan) };
    this.cache.set(epoch, entry);
    if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as number);
    return entry;
  }

  /** The summary of `epoch` for a world of `worldSize` ranks. */
  summary(epoch: number, worldSize: number): EpochSummary {
    const { plan, digest } = this.global(epoch);
    if (worldSize > plan.globalBatch) {
      throw new InvalidRequestError(
        `world_size (${worldSize}) exceeds the global batch (${plan.globalBatch}); every rank needs a row`,
      );
    }
    const { alpha, lr } = epochSchedule(this.run.cfg, epoch);
    return {
      epoch,
      alpha: alpha ?? Number.NaN,
      lr,
      steps: plan.steps,
      globalBatch: plan.globalBatch,
      worldSize,
      perRankBatch: shardRange(plan.globalBatch, 0, worldSize).size,
      planDigest: digest,
    };
  }

  /** Rank `rank`'s rows of every step of `epoch` from `fromStep`, in step order. */
  *shards(epoch: number, rank: number, worldSize: number, fromStep: number): Generator<ShardRows> {
    const { plan, digest } = this.global(epoch);
    if (!Number.isInteger(fromStep) || fromStep < 0 || fromStep > plan.steps) {
      throw new InvalidRequestError(
        `StreamShardRequest.from_step (${fromStep}) must be in [0, ${plan.steps}]`,
      );
    }
    if (worldSize > plan.globalBatch) {
      throw new InvalidRequestError(
        `world_size (${worldSize}) exceeds the global batch (${plan.globalBatch})`,
      );
    }
    const { offset, size } = shardRange(plan.globalBatch, rank, worldSize);
    const hasReversed = plan.reversed.length > 0;
    for (let step = fromStep; step < plan.steps; step++) {
      const start = step * plan.globalBatch + offset;
      yield {
        epoch,
        step,
        uniform: plan.uniform.subarray(start, start + size),
        reversed: hasReversed ? plan.reversed.subarray(start, start + size) : new Int32Array(0),
        planDigest: digest,
      };
    }
  }
}
