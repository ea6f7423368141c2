/**
 * The training loop every worker runs: one rank's view of data-parallel BBN (or baseline)
 * training. With a world of one it is the single-process trainer of `bbn train`.
 *
 * One step, on every rank alike:
 *   1. take this rank's rows of the epoch plan's global batch (uniform and reversed indices);
 *   2. read and augment them; row r of the global batch is augmented by an Rng derived from
 *      (seed, epoch, global slot), so the data does not depend on the world size;
 *   3. compute the gradient of the SUM of the per-sample losses (nothing is applied);
 *   4. allreduce [gradient | Σ loss weights | Σ loss | Σ correct | rows] across ranks (with W > 1
 *      also rank 0's BatchNorm buffers and the replica check's slots, replica-check.ts);
 *   5. divide by the global loss normaliser (the global batch, or Σ w_y with class weights) and
 *      apply the same SGD update (Nesterov, weight decay on all parameters) as every other rank.
 * With one rank, step 4 is the identity and this is exactly PyTorch's mean-loss step.
 *
 * Divergence guard: after step 4 (so every rank judges the same reduced numbers) a non-finite
 * loss or gradient, or an update that would make a weight non-finite, is never applied:
 * `train.onNonFinite: stop` throws a `DivergenceError` naming epoch, step and rank (nothing of the
 * step reaches the weights or a checkpoint); `skip` drops the step and counts it.
 *
 * Everything random derives from the run seed by (purpose, epoch, step, slot), so a run resumed
 * from a checkpoint taken at any step continues with the same batches and the same numbers.
 */
import { alphaAt, isPerBatchAlpha } from '../core/alpha.ts';
import type { RunConfig } from '../core/config.ts';
import { type EpochPlan, shardOf } from '../core/epoch-plan.ts';
import { epochSchedule, planFor } from '../core/epoch-schedule.ts';
import { type EpochPolicy, epochPolicy, totalEpochs } from '../core/methods.ts';
import type { AccuracyReport } from '../core/metrics.ts';
import { Rng } from '../core/rng.ts';
import type { LoadedData } from '../data/api.ts';
import { assembleBatch } from '../data/batch.ts';
import type { Model, StepOptionsBase } from '../model/api.ts';
import { Sgd, type SgdState } from '../model/optimizer.ts';
import { evaluateModel } from './evaluate.ts';
import { divergedRanks, ReplicasDivergedError, replicaSlots, writeReplicaDigest } from './replica-check.ts';

/** Training diverged: a step's loss, gradient or update was NaN or infinite. */
export class DivergenceError extends Error {
  override name = 'DivergenceError';
  readonly userFacing = true;
  constructor(
    message: string,
    readonly epoch: number,
    readonly step: number,
    readonly rank: number,
  ) {
    super(message);
  }
}

/**
 * Sums a buffer across all ranks in place (the ring allreduce; the identity for one rank). The
 * tag's `bf16Elements` says how many leading values are gradients, the only part a ring with
 * bf16 wire compression may round (`distributed.compressBf16`). With overlap
 * (`distributed.overlapSegmentBytes`) a step's buffer is reduced in pieces, each tagged with its
 * `span` in the step's buffer; several may be in flight at once, and they are handed over in the
 * order the ring must reduce them (the same on every rank).
 */
export type Reducer = (
  data: Float32Array,
  tag: {
    epoch: number;
    step: number;
    bf16Elements?: number;
    span?: { readonly offset: number; readonly total: number };
  },
) => Promise<void>;

/** Where this rank sits in the world. */
export interface RankInfo {
  readonly rank: number;
  readonly worldSize: number;
}

/** Per-step progress for bars, metrics and heartbeats. */
export interface StepReport {
  readonly epoch: number;
  readonly step: number;
  readonly steps: number;
  readonly loss: number;
  readonly accuracy: number;
  readonly alpha: number | null;
  readonly lr: number;
  readonly computeSeconds: number;
  /** The wait for the step's allreduce after its compute (with overlap: what the backward did not hide). */
  readonly reduceSeconds: number;
}

/** What one epoch of training produced (global numbers: identical on every rank). */
export interface EpochResult {
  readonly epoch: number;
  readonly stage: 1 | 2;
  readonly alpha: number | null;
  readonly lr: number;
  readonly steps: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly seconds: number;
  /** False when the epoch was interrupted by `shouldStop`; `stepsDone` says how far it got. */
  readonly complete: boolean;
  readonly stepsDone: number;
  /** Steps dropped for a non-finite loss, gradient or update (`train.onNonFinite: skip`). */
  readonly skippedSteps: number;
}

/** Trainer state that checkpoints carry besides the model's own. */
export interface TrainerState {
  readonly momentum: Float32Array;
  readonly optimizer: Omit<SgdState, 'momentum'>;
  /** Running sums of the interrupted epoch (zero at a boundary). */
  readonly partial: { lossSum: number; accSum: number; steps: number; skipped?: number };
}

/** Rows of one step for this rank: the uniform rows and (BBN, or balanced batches) the second stream. */
export interface StepRows {
  readonly offset: number;
  readonly uniform: Int32Array;
  readonly reversed: Int32Array;
}

/** One rank's trainer. The caller owns the model and the data; `dispose` frees nothing it did not make. */
export class Trainer {
  private readonly params: Float32Array;
  private optimizer: Sgd;
  private readonly rootRng: Rng;
  /** Number of extra reduced values appended after the gradient. */
  private static readonly EXTRA = 4;

  constructor(
    private readonly cfg: RunConfig,
    private readonly data: LoadedData,
    readonly model: Model,
    private readonly rank: RankInfo = { rank: 0, worldSize: 1 },
    private readonly reduce: Reducer = async () => {},
  ) {
    this.params = model.getParams();
    this.optimizer = this.makeOptimizer(epochPolicy(cfg, 1, data.trainCounts));
    this.rootRng = Rng.fromSeed(cfg.seed);
  }

  /** Total epochs of the run. */
  get epochs(): number {
    return totalEpochs(this.cfg);
  }

  private makeOptimizer(policy: EpochPolicy): Sgd {
    return new Sgd(this.model.numParams, {
      momentum: this.cfg.train.momentum,
      nesterov: this.cfg.train.nesterov,
      weightDecay: this.cfg.train.weightDecay,
      range: policy.trainable === 'classifier' ? this.model.classifierRange() : undefined,
    });
  }

  /** The policy of an epoch for this run. */
  policy(epoch: number): EpochPolicy {
    return epochPolicy(this.cfg, epoch, this.data.trainCounts);
  }

  /** The epoch's global plan (the coordinator serves the same one). */
  plan(epoch: number): EpochPlan {
    return planFor(this.cfg, this.policy(epoch), epoch, this.data.train.labels, this.data.train.numClasses);
  }

  /**
   * Trains one epoch from step `fromStep` (> 0 when resuming mid-epoch). `rowsOf(step)` gives this
   * rank's rows (by default from the locally computed plan). Stops early, after a whole step,
   * when `shouldStop()` turns true.
   */
  async trainEpoch(
    epoch: number,
    opts: {
      fromStep?: number;
      partial?: TrainerState['partial'];
      rowsOf?: (step: number) => StepRows | Promise<StepRows>;
      steps?: number;
      onStep?: (r: StepReport) => void;
      shouldStop?: () => boolean;
      /**
       * Awaited after each applied step with the steps done so far and the epoch's steps; the
       * trainer's `state()` then describes that position (a periodic mid-epoch checkpoint).
       */
      afterStep?: (stepsDone: number, steps: number) => Promise<void>;
    } = {},
  ): Promise<EpochResult> {
    const started = performance.now();
    const policy = this.policy(epoch);
    if (policy.resetClassifier && (opts.fromStep ?? 0) === 0) this.resetClassifier(epoch);
    if (policy.trainable === 'classifier' && this.optimizer.range.offset === 0) {
      this.optimizer = this.makeOptimizer(policy);
    }
    const { alpha: epochAlpha, lr } = epochSchedule(this.cfg, epoch);
    let plan: EpochPlan | undefined;
    const localPlan = (): EpochPlan => {
      if (!plan) plan = this.plan(epoch);
      return plan;
    };
    const rowsOf =
      opts.rowsOf ??
      ((step: number) => {
        const shard = shardOf(localPlan(), step, this.rank.rank, this.rank.worldSize);
        return { offset: shard.offset, uniform: shard.uniform, reversed: shard.reversed };
      });
    const steps = opts.steps ?? localPlan().steps;
    const B = this.cfg.train.batchSize;
    const n = this.model.numParams;
    // With W > 1 the wire also carries rank 0's BatchNorm running statistics (zeros from the other
    // ranks), so every rank ends each step with rank 0's, as DDP's broadcast_buffers does: ranks
    // never drift apart in what eval-mode BN (a frozen backbone, a checkpoint) uses.
    const nb = this.rank.worldSize > 1 ? this.model.numBuffers : 0;
    const buf = new Float32Array(n + Trainer.EXTRA + nb + replicaSlots(this.rank.worldSize));
    const grads = buf.subarray(0, n);
    const buffers = buf.subarray(n + Trainer.EXTRA, n + Trainer.EXTRA + nb);
    const checks = buf.subarray(n + Trainer.EXTRA + nb);
    const checkEvery = this.rank.worldSize > 1 ? this.cfg.distributed.checksumEverySteps : 0;
    const segmentElements = this.rank.worldSize > 1 ? this.cfg.distributed.overlapSegmentBytes >> 2 : 0;
    let { lossSum, accSum, steps: done } = opts.partial ?? { lossSum: 0, accSum: 0, steps: 0 };
    let skipped = opts.partial?.skipped ?? 0;
    let step = opts.fromStep ?? 0;
    for (; step < steps; step++) {
      if (opts.shouldStop?.()) break;
      const t0 = performance.now();
      const rows = await rowsOf(step);
      const alpha = this.stepAlpha(epoch, step, epochAlpha);
      // With overlap, each gradient segment goes to the ring as soon as the backward pass finished
      // it; the sums and BN buffers follow after the step. Awaited after the step: a failure
      // meanwhile must not count as an unhandled rejection.
      const pieces: Promise<void>[] = [];
      const reducePiece = (lo: number, hi: number, bf16Elements: number) => {
        const p = this.reduce(buf.subarray(lo, hi), {
          epoch,
          step,
          bf16Elements,
          span: { offset: lo, total: buf.length },
        });
        p.catch(() => {});
        pieces.push(p);
      };
      const segments =
        segmentElements > 0
          ? { elements: segmentElements, onSegment: (lo: number, hi: number) => reducePiece(lo, hi, hi - lo) }
          : undefined;
      const result = await this.computeStep(epoch, step, policy, rows, alpha, grads, segments);
      buf[n] = result.normalizer;
      buf[n + 1] = result.lossSum;
      buf[n + 2] = result.correct;
      buf[n + 3] = result.count;
      if (nb > 0) {
        if (this.rank.rank === 0) buffers.set(this.model.getBuffers());
        else buffers.fill(0);
      }
      // The weights this step started from (unchanged until the update below).
      const checking = checkEvery > 0 && step % checkEvery === 0;
      writeReplicaDigest(checks, this.rank.rank, this.params, checking);
      const t1 = performance.now();
      if (segments) {
        reducePiece(n, buf.length, 0);
        await Promise.all(pieces);
      } else {
        await this.reduce(buf, { epoch, step, bf16Elements: n });
      }
      const t2 = performance.now();
      const diverged = checking ? divergedRanks(checks) : [];
      if (diverged.length > 0) {
        throw new ReplicasDivergedError(
          `replicas diverged at epoch ${epoch} step ${step + 1}: the weights of rank ${diverged.join(', ')} differ from rank 0's ` +
            `(checked every ${checkEvery} steps, distributed.checksumEverySteps); the step was not applied`,
          epoch,
          step + 1,
          diverged,
        );
      }
      if (nb > 0) this.model.setBuffers(buffers); // copied into the variables
      const norm = buf[n];
      if (!(norm > 0) || buf[n + 3] !== B) {
        throw new Error(`epoch ${epoch} step ${step}: reduced batch has ${buf[n + 3]} rows, expected ${B}`);
      }
      // 0·x is 0 for every finite x and NaN otherwise: one pass finds any non-finite gradient.
      let poison = 0;
      for (let i = 0; i < n; i++) {
        grads[i] /= norm;
        poison += grads[i] * 0;
      }
      const bad = !Number.isFinite(buf[n + 1])
        ? `loss ${buf[n + 1] / norm}`
        : Number.isNaN(poison)
          ? 'a gradient'
          : undefined;
      if (bad || !this.applyFinite(grads, lr)) {
        const what = bad ?? 'the update (a weight would become NaN or infinite)';
        if (this.cfg.train.onNonFinite === 'stop') {
          throw new DivergenceError(
            `training diverged at epoch ${epoch} step ${step + 1} (rank ${this.rank.rank}): ${what} is not finite; ` +
              'the step was not applied and nothing was checkpointed. Lower train.lr, or set train.onNonFinite=skip',
            epoch,
            step + 1,
            this.rank.rank,
          );
        }
        skipped++;
        continue;
      }
      this.model.setParams(this.params);
      const loss = buf[n + 1] / norm;
      const accuracy = buf[n + 2] / B;
      lossSum += loss;
      accSum += accuracy;
      done++;
      opts.onStep?.({
        epoch,
        step: step + 1,
        steps,
        loss,
        accuracy,
        alpha,
        lr,
        computeSeconds: (t1 - t0) / 1000,
        reduceSeconds: (t2 - t1) / 1000,
      });
      if (opts.afterStep) {
        this.lastPartial = { lossSum, accSum, steps: done, skipped };
        await opts.afterStep(step + 1, steps);
      }
    }
    // Sums of an interrupted epoch travel in its checkpoint; a finished epoch leaves none behind.
    this.lastPartial =
      step >= steps ? { lossSum: 0, accSum: 0, steps: 0 } : { lossSum, accSum, steps: done, skipped };
    return {
      epoch,
      stage: policy.stage,
      alpha: epochAlpha,
      lr,
      steps,
      trainLoss: done > 0 ? lossSum / done : Number.NaN,
      trainAccuracy: done > 0 ? accSum / done : Number.NaN,
      seconds: (performance.now() - started) / 1000,
      complete: step >= steps,
      stepsDone: step,
      skippedSteps: skipped,
    };
  }

  /**
   * Applies the SGD update unless it would make a weight non-finite; then the weights and the
   * momentum are left as they were and it returns false. The check is one pass over the weights;
   * the momentum is copied first only when steps may be skipped (stop mode throws instead).
   */
  private applyFinite(grads: Float32Array, lr: number): boolean {
    const keep = this.cfg.train.onNonFinite === 'skip' ? this.optimizer.getState() : undefined;
    this.optimizer.step(this.params, grads, lr);
    let poison = 0;
    for (let i = 0; i < this.params.length; i++) poison += this.params[i] * 0;
    if (!Number.isNaN(poison)) return true;
    this.params.set(this.model.getParams()); // the model still holds the weights before the step
    if (keep) this.optimizer.setState(keep);
    return false;
  }

  /** Running sums of the last (possibly interrupted) epoch, for a mid-epoch checkpoint. */
  private lastPartial: TrainerState['partial'] = { lossSum: 0, accSum: 0, steps: 0 };

  private stepAlpha(epoch: number, step: number, epochAlpha: number | null): number | null {
    if (epochAlpha === null) return null;
    const a = this.cfg.train.alpha;
    if (!isPerBatchAlpha(a.schedule)) return epochAlpha;
    return alphaAt(
      epoch,
      { schedule: a.schedule, maxEpoch: this.cfg.train.epochs, betaShape: a.betaShape },
      this.rootRng.split('alpha').split(epoch).split(step),
    );
  }

  /** Per-row augmentation generators: row `offset+i` of stream `stream` in this step. */
  private rowRngs(epoch: number, step: number, offset: number, count: number, stream: number): Rng[] {
    const base = this.rootRng.split('augment').split(epoch).split(step).split(stream);
    return Array.from({ length: count }, (_, i) => base.split(offset + i));
  }

  private async computeStep(
    epoch: number,
    step: number,
    policy: EpochPolicy,
    rows: StepRows,
    alpha: number | null,
    out: Float32Array,
    segments: StepOptionsBase['segments'],
  ): Promise<{ normalizer: number; lossSum: number; correct: number; count: number }> {
    const { train, augment } = this.data;
    const weights = policy.classWeights ?? undefined;
    const count = rows.uniform.length;
    if (this.model.variant === 'bbn') {
      const [u, r] = await Promise.all([
        assembleBatch(train, rows.uniform, {
          train: true,
          spec: augment,
          rngs: this.rowRngs(epoch, step, rows.offset, count, 0),
        }),
        assembleBatch(train, rows.reversed, {
          train: true,
          spec: augment,
          rngs: this.rowRngs(epoch, step, rows.offset, count, 1),
        }),
      ]);
      const res = this.model.step({ xu: u.x, yu: u.y, xr: r.x, yr: r.y }, alpha ?? 0.5, {
        normalizer: 1,
        trainable: policy.trainable,
        out,
        segments,
      });
      return { normalizer: count, lossSum: res.loss, correct: res.correct, count };
    }
    const source = policy.batchSource === 'balanced' ? rows.reversed : rows.uniform;
    const b = await assembleBatch(train, source, {
      train: true,
      spec: augment,
      rngs: this.rowRngs(epoch, step, rows.offset, count, 0),
    });
    const res = this.model.step(
      { x: b.x, y: b.y },
      { normalizer: 1, classWeights: weights, trainable: policy.trainable, out, segments },
    );
    let normalizer = count;
    if (weights) {
      normalizer = 0;
      for (let i = 0; i < b.y.length; i++) normalizer += weights[b.y[i]];
    }
    return { normalizer, lossSum: res.loss, correct: res.correct, count };
  }

  /** Decoupling stage 2: a fresh classifier, W and b ~ U(±1/√fan_in) as PyTorch's Linear. */
  private resetClassifier(epoch: number): void {
    const { offset, length } = this.model.classifierRange();
    const fanIn = this.model.featureDim * (this.model.variant === 'bbn' ? 2 : 1);
    const bound = 1 / Math.sqrt(fanIn);
    const rng = this.rootRng.split('reset-classifier').split(epoch);
    for (let i = offset; i < offset + length; i++) this.params[i] = rng.uniform(-bound, bound);
    this.model.setParams(this.params);
  }

  /** Evaluates on the test set (see evaluate.ts). */
  evaluate(): Promise<AccuracyReport & { predictions: Int32Array }> {
    return evaluateModel(this.model, this.data, this.cfg);
  }

  /** Optimizer and partial-epoch state for a checkpoint. */
  state(): TrainerState {
    const { momentum, ...optimizer } = this.optimizer.getState();
    return { momentum, optimizer, partial: { ...this.lastPartial } };
  }

  /** Restores the optimizer (with the range it was saved with) after the caller set the model's state. */
  restore(state: TrainerState): void {
    this.params.set(this.model.getParams());
    this.optimizer = new Sgd(this.model.numParams, {
      momentum: this.cfg.train.momentum,
      nesterov: this.cfg.train.nesterov,
      weightDecay: this.cfg.train.weightDecay,
      range: state.optimizer.range,
    });
    this.optimizer.setState({ ...state.optimizer, momentum: state.momentum });
    this.lastPartial = { ...state.partial };
  }
}
