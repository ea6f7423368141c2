/**
 * What the BBN and single-branch models share: building the architecture from a spec, the flat
 * parameter/buffer/state API, eval-mode inference in batches, and the one-tape gradient step that
 * flattens gradients and applies the recorded BN running-statistic updates in forward order.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../core/rng.ts';
import {
  type EvalResult,
  type LayoutEntry,
  ModelError,
  type ModelSpec,
  type ModelState,
  type ParamRange,
  type StepOptionsBase,
  type Trainable,
} from './api.ts';
import { argmaxRows, countCorrect, meanCrossEntropy, softTargetCrossEntropy } from './combiner.ts';
import { GradTaps } from './grad-taps.ts';
import {
  type Architecture,
  applyBnUpdates,
  type BnStatUpdate,
  disposeBnUpdates,
  type ForwardCtx,
  gap,
  Linear,
  type Module4D,
} from './layers.ts';
import { layoutOf, ParamRegistry, ParamStore } from './params.ts';
import { buildResnetCifar } from './resnet-cifar.ts';
import { buildResnet50 } from './resnet50.ts';

/** A spec's module tree and tensor specs, built without allocating any tensor. */
export interface ModelPlan {
  readonly registry: ParamRegistry;
  readonly arch: Architecture;
  readonly classifier: Linear;
  /** `architecture#layout-hash`. */
  readonly signature: string;
}

/** Checks a spec and builds its plan (registration order = flat order; classifier last). */
export function planModel(spec: ModelSpec): ModelPlan {
  validateSpec(spec);
  const registry = new ParamRegistry();
  const arch =
    spec.backbone === 'resnet_cifar' ? buildResnetCifar(registry, spec) : buildResnet50(registry, spec);
  const classifier = new Linear(
    registry,
    'classifier',
    arch.featureDim * arch.branches.length,
    spec.numClasses,
  );
  return { registry, arch, classifier, signature: signatureOf(spec, registry) };
}

function validateSpec(spec: ModelSpec): void {
  if (spec.variant !== 'bbn' && spec.variant !== 'single') {
    throw new ModelError(`ModelSpec.variant (${spec.variant}) must be 'bbn' or 'single'`);
  }
  if (spec.backbone !== 'resnet_cifar' && spec.backbone !== 'resnet50') {
    throw new ModelError(`ModelSpec.backbone (${spec.backbone}) must be 'resnet_cifar' or 'resnet50'`);
  }
  if (!Number.isInteger(spec.numClasses) || spec.numClasses < 2) {
    throw new ModelError(`ModelSpec.numClasses (${spec.numClasses}) must be an integer >= 2`);
  }
  const s = spec.inputShape;
  if (!Array.isArray(s) || s.length !== 3 || !s.every((v) => Number.isInteger(v) && v >= 1)) {
    throw new ModelError(
      `ModelSpec.inputShape (${JSON.stringify(s)}) must be [height, width, channels] of positive integers`,
    );
  }
  if (spec.bnGammaInit !== 'ones' && spec.bnGammaInit !== 'uniform') {
    throw new ModelError(`ModelSpec.bnGammaInit (${spec.bnGammaInit}) must be 'ones' or 'uniform'`);
  }
}

function signatureOf(spec: ModelSpec, reg: ParamRegistry): string {
  const [h, w, c] = spec.inputShape;
  const arch = `${spec.variant}-${spec.backbone}-d${spec.depth}-w${spec.baseWidth}-c${spec.numClasses}-in${h}x${w}x${c}`;
  const shapes = JSON.stringify([
    reg.paramSpecs().map((p) => [p.name, p.shape]),
    reg.bufferSpecs().map((p) => [p.name, p.shape]),
  ]);
  return `${arch}#${createHash('sha256').update(shapes).digest('hex').slice(0, 16)}`;
}

/** Parameter layout of a spec, without allocating (e.g. counting ResNet-50's 28 M parameters). */
export function describeModel(spec: ModelSpec): {
  signature: string;
  layout: LayoutEntry[];
  numParams: number;
} {
  const plan = planModel(spec);
  const layout = layoutOf(plan.registry.paramSpecs());
  const last = layout[layout.length - 1];
  return { signature: plan.signature, layout, numParams: last.offset + last.size };
}

/** Result of the shared gradient core. */
export interface Differentiated {
  readonly loss: number;
  /** Training logits `[B, C]` (for accuracy). */
  readonly logits: Float32Array;
  readonly grads: Float32Array;
}

/** Base of both model kinds. */
export abstract class Network {
  readonly signature: string;
  readonly numParams: number;
  readonly numBuffers: number;
  readonly featureDim: number;
  protected readonly arch: Architecture;
  protected readonly classifier: Linear;
  protected readonly store: ParamStore;
  /** Elements per image, h·w·c. */
  protected readonly pixels: number;
  /** Cached parameter layout (the store's is immutable). */
  private readonly paramLayout: LayoutEntry[];
  private disposed = false;

  constructor(
    readonly spec: ModelSpec,
    rng: Rng,
  ) {
    const plan = planModel(spec);
    this.arch = plan.arch;
    this.classifier = plan.classifier;
    this.signature = plan.signature;
    this.store = new ParamStore(plan.registry, rng);
    this.numParams = this.store.numParams;
    this.numBuffers = this.store.numBuffers;
    this.featureDim = plan.arch.featureDim;
    this.pixels = spec.inputShape[0] * spec.inputShape[1] * spec.inputShape[2];
    this.paramLayout = this.store.layout();
  }

  layout(): LayoutEntry[] {
    return this.store.layout();
  }

  bufferLayout(): LayoutEntry[] {
    return this.store.buffersLayout();
  }

  classifierRange(): ParamRange {
    const w = this.paramLayout[this.paramLayout.length - 2];
    return { offset: w.offset, length: this.numParams - w.offset };
  }

  getParams(): Float32Array {
    this.alive();
    return this.store.getParams();
  }

  setParams(params: Float32Array): void {
    this.alive();
    this.store.setParams(params);
  }

  getBuffers(): Float32Array {
    this.alive();
    return this.store.getBuffers();
  }

  setBuffers(buffers: Float32Array): void {
    this.alive();
    this.store.setBuffers(buffers);
  }

  getState(): ModelState {
    return { signature: this.signature, params: this.getParams(), buffers: this.getBuffers() };
  }

  setState(state: ModelState): void {
    if (state?.signature !== this.signature) {
      throw new ModelError(
        `model state signature ${JSON.stringify(state?.signature)} does not match this model's ${this.signature}; the checkpoint is from another architecture`,
      );
    }
    // Check both lengths before writing either, so a bad state leaves the model unchanged.
    if (state.params?.length !== this.numParams || state.buffers?.length !== this.numBuffers) {
      throw new ModelError(
        `model state holds ${state.params?.length} params / ${state.buffers?.length} buffers, expected ${this.numParams} / ${this.numBuffers}`,
      );
    }
    this.setParams(state.params);
    this.setBuffers(state.buffers);
  }

  bnBatchesTracked(): Map<string, number> {
    return new Map(this.store.bnBatchesTracked);
  }

  predict(x: Float32Array, batchSize = 64): Float32Array {
    const n = this.batchCount(x, 'x');
    const c = this.spec.numClasses;
    const out = new Float32Array(n * c);
    this.forEachBatch(x, n, batchSize, (xt, start) => {
      tf.tidy(() => out.set(this.evalLogits(xt).dataSync() as Float32Array, start * c));
    });
    return out;
  }

  evaluate(x: Float32Array, y: ArrayLike<number>, batchSize = 64): EvalResult {
    const n = this.batchCount(x, 'x');
    if (y.length !== n) throw new ModelError(`labels (${y.length}) must match the ${n} images`);
    const logits = this.predict(x, batchSize);
    const c = this.spec.numClasses;
    const predictions = argmaxRows(logits, c);
    return {
      loss: meanCrossEntropy(logits, y, c),
      top1: n ? countCorrect(predictions, y) / n : 0,
      predictions,
      logits,
    };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.store.dispose();
  }

  /** Eval-mode logits: trunk once, every branch on the same h, GAP each, concat, Linear (§3). */
  protected evalLogits(x: tf.Tensor4D): tf.Tensor2D {
    const feats = this.evalFeatures(x);
    const f = feats.length === 1 ? feats[0] : tf.concat(feats, 1);
    return this.classifier.forward(this.store, f);
  }

  /** Eval-mode pooled features per branch on the same images. */
  protected evalFeatures(x: tf.Tensor4D): tf.Tensor2D[] {
    const ctx = this.ctx(false);
    const h = this.arch.trunk.forward(ctx, x);
    return this.arch.branches.map((b) => gap(b.forward(ctx, h)));
  }

  /** Pooled features of `branch` after the trunk, in the context's mode. */
  protected branchFeature(ctx: ForwardCtx, branch: Module4D, x: tf.Tensor4D): tf.Tensor2D {
    return gap(branch.forward(ctx, this.arch.trunk.forward(ctx, x)));
  }

  /** Eval-mode features of every branch, `[n, D]` each, in batches. */
  protected featuresAll(x: Float32Array, batchSize: number): Float32Array[] {
    const n = this.batchCount(x, 'x');
    const d = this.featureDim;
    const outs = this.arch.branches.map(() => new Float32Array(n * d));
    this.forEachBatch(x, n, batchSize, (xt, start) => {
      tf.tidy(() => {
        this.evalFeatures(xt).forEach((f, i) => {
          outs[i].set(f.dataSync() as Float32Array, start * d);
        });
      });
    });
    return outs;
  }

  protected ctx(training: boolean, stats: BnStatUpdate[] | null = null): ForwardCtx {
    return { store: this.store, training, stats };
  }

  /** Images in a flat NHWC buffer; throws if the length is not a whole number of images. */
  protected batchCount(x: Float32Array, what: string): number {
    this.alive();
    if (!(x instanceof Float32Array)) throw new ModelError(`${what} must be a Float32Array (NHWC)`);
    const n = x.length / this.pixels;
    if (!Number.isInteger(n)) {
      throw new ModelError(`${what} length ${x.length} is not a multiple of h·w·c = ${this.pixels}`);
    }
    return n;
  }

  /** A `[n, h, w, c]` tensor over `x` (read-only use). */
  protected images(x: Float32Array, n: number): tf.Tensor4D {
    const [h, w, c] = this.spec.inputShape;
    return tf.tensor4d(x, [n, h, w, c], 'float32');
  }

  private forEachBatch(
    x: Float32Array,
    n: number,
    batchSize: number,
    fn: (xt: tf.Tensor4D, start: number) => void,
  ): void {
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new ModelError(`batchSize (${batchSize}) must be a positive integer`);
    }
    for (let start = 0; start < n; start += batchSize) {
      const m = Math.min(batchSize, n - start);
      const xt = this.images(x.subarray(start * this.pixels, (start + m) * this.pixels), m);
      try {
        fn(xt, start);
      } finally {
        xt.dispose();
      }
    }
  }

  /**
   * The one-tape gradient core. `setup` runs inside a tidy with a train-mode context (BN updates
   * recorded) and returns the differentiated function producing the logits; anything frozen it
   * computes first stays off the tape. Loss = −Σ T∘logsoftmax(z). Gradients are written flat
   * (zeros for variables not differentiated); BN updates are applied only after success.
   */
  protected differentiate(
    trainable: Trainable,
    targets: Float32Array,
    setup: (ctx: ForwardCtx) => () => tf.Tensor2D,
    opts: StepOptionsBase,
  ): Differentiated {
    const grads = opts.out ?? new Float32Array(this.numParams);
    if (grads.length !== this.numParams) {
      throw new ModelError(`options.out length ${grads.length} must be numParams ${this.numParams}`);
    }
    const stats: BnStatUpdate[] = [];
    let logitsT: tf.Tensor | null = null;
    const seg = opts.segments;
    const taps =
      seg && trainable === 'all' ? new GradTaps(this.paramLayout, grads, seg.elements, seg.onSegment) : null;
    if (taps) this.store.tap = (i, v) => taps.tap(i, v);
    try {
      const loss = tf.tidy(() => {
        const c = this.spec.numClasses;
        const t = tf.tensor2d(targets, [targets.length / c, c], 'float32');
        const f = setup(this.ctx(trainable === 'all', stats));
        const vars =
          trainable === 'all'
            ? this.store.params
            : [this.store.get(this.classifier.weight), this.store.get(this.classifier.bias)];
        const res = tf.variableGrads(() => {
          const z = f();
          logitsT = tf.keep(z);
          return softTargetCrossEntropy(z, t);
        }, vars as tf.Variable[]);
        if (taps) taps.finish();
        else {
          this.flattenGrads(res.grads, grads);
          seg?.onSegment(0, grads.length);
        }
        return res.value.dataSync()[0];
      });
      const logits = Float32Array.from((logitsT as tf.Tensor | null)?.dataSync() ?? []);
      applyBnUpdates(this.store, stats.splice(0));
      return { loss, logits, grads };
    } finally {
      this.store.tap = null;
      disposeBnUpdates(stats);
      (logitsT as tf.Tensor | null)?.dispose();
    }
  }

  private flattenGrads(named: tf.NamedTensorMap, buf: Float32Array): void {
    this.store.params.forEach((v, i) => {
      const e = this.paramLayout[i];
      const g = named[v.name];
      if (g) buf.set(g.dataSync() as Float32Array, e.offset);
      else buf.fill(0, e.offset, e.offset + e.size);
    });
  }

  protected alive(): void {
    if (this.disposed) throw new ModelError(`model ${this.signature} was disposed`);
  }
}
