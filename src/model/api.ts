/**
 * Contracts of the model layer: the model spec, the two model kinds (bilateral BBN and
 * single-branch baselines), step options and results, the flat-buffer layout and the error class.
 *
 * Flat buffers. Every trainable parameter is a `tf.Variable` registered in construction order,
 * which follows PyTorch's `state_dict` order for the same network (stem, layer1.0, …, the shared
 * trunk, then `cb_block`, `rb_block`, then `classifier.weight`, `classifier.bias`). `getParams()`
 * concatenates them flat in that order; `layout()` lists `{name, shape, offset, size}` for each.
 * BN running statistics (non-trainable) form a second flat buffer in the same construction order
 * (`running_mean`, `running_var` per BN), listed by `bufferLayout()`.
 *
 * Tensor layouts are TF.js-native (channels last): conv kernels `[kh, kw, cin, cout]`, the
 * classifier weight `[in, C]` (the transpose of PyTorch's `[C, in]`; for BBN, rows `0..D-1` act on
 * the conventional-branch feature and rows `D..2D-1` on the re-balancing one).
 */

/** The backbone family. */
export type BackboneKind = 'resnet_cifar' | 'resnet50';

/** `bbn`: shared trunk plus cb/rb last blocks and one Linear(2D, C); `single`: the plain network. */
export type ModelVariant = 'bbn' | 'single';

/** BN γ initialisation: 1 (torch ≥ 1.2) or U(0,1) (torch 1.0.x, BBN-SPEC §8.9). */
export type BnGammaInit = 'ones' | 'uniform';

/** Everything that fixes a model's architecture and its initialisation rule. */
export interface ModelSpec {
  readonly variant: ModelVariant;
  readonly backbone: BackboneKind;
  /** ResNet-cifar depth 6n+2 (32 in the paper); must be 50 for `resnet50`. */
  readonly depth: number;
  /** First-stage width: 16 for the paper's ResNet-32, 64 for ResNet-50. */
  readonly baseWidth: number;
  readonly numClasses: number;
  /** Input image `[height, width, channels]` (NHWC without the batch axis). */
  readonly inputShape: readonly [number, number, number];
  readonly bnGammaInit: BnGammaInit;
}

/** One tensor in a flat buffer. */
export interface LayoutEntry {
  /** PyTorch-style name, e.g. `backbone.layer1.0.conv1.weight`, `classifier.bias`. */
  readonly name: string;
  /** TF.js shape (channels last). */
  readonly shape: readonly number[];
  /** First element of this tensor in the flat buffer. */
  readonly offset: number;
  /** Element count. */
  readonly size: number;
}

/** A contiguous slice of the flat parameter buffer. */
export interface ParamRange {
  readonly offset: number;
  readonly length: number;
}

/** A full model snapshot: parameters, BN running statistics and the model signature. */
export interface ModelState {
  /** `architecture#hash-of-layout`; `setState` refuses a state whose signature differs. */
  readonly signature: string;
  /** Flat parameters in `layout()` order. */
  readonly params: Float32Array;
  /** Flat BN running statistics in `bufferLayout()` order. */
  readonly buffers: Float32Array;
}

/**
 * Which parameters a step differentiates.
 * - `all`: the whole network, BN in train mode (batch statistics, running statistics updated).
 * - `classifier`: decoupling stage 2 / cRT. The backbone is frozen: it runs in eval mode (running
 *   statistics, never updated) outside the gradient tape, and only the classifier gets gradients.
 *   The returned gradient buffer still has the full `numParams` length with zeros outside
 *   `classifierRange()`, so every caller (and the allreduce) keeps one layout.
 */
export type Trainable = 'all' | 'classifier';

/** Options shared by the BBN and the single-branch step. */
export interface StepOptionsBase {
  /** Default `all`. */
  readonly trainable?: Trainable;
  /**
   * Per-class CE weights (PyTorch `cross_entropy(weight=w)`: the loss is Σ w_y·ce / Σ w_y).
   * Length `numClasses`. Used by re-weighting and DRW baselines.
   */
  readonly classWeights?: ArrayLike<number>;
  /** Write the gradient here (length `numParams`) instead of allocating a new buffer. */
  readonly out?: Float32Array;
  /**
   * Report the gradient by segment during the backward pass (grad-taps.ts): `onSegment(lo, hi)`
   * is called, in the middle of `step`, once [lo, hi) of the flat gradient is final (already
   * written into the result buffer), from the end of the flat order down to 0, each segment at
   * least `elements` long (except the last). The gradient is bit-identical to the one reported at
   * the end. With a frozen backbone (`trainable: 'classifier'`) it is one segment, at the end.
   */
  readonly segments?: { readonly elements: number; readonly onSegment: (lo: number, hi: number) => void };
}

/**
 * Sharding. The step's objective is Σ_i w_{y_i}·ce_i / N, where N is the `normalizer`. By default
 * N is the LOCAL Σ_i w_{y_i} (the local batch size without class weights), which is PyTorch's
 * mean. A data-parallel rank passes the GLOBAL value instead (the global batch size, or Σ w_y over
 * the global batch; `ceNormalizer` computes it from labels). Then the SUM over ranks of the
 * returned gradients (and losses) equals the single-process gradient (loss) of the global batch,
 * exactly for BN-free parts; BN uses per-rank batch statistics as in the reference.
 * Equivalently, with no class weights, gradients are scaled by localBatch/globalBatch
 * (`gradScale`); `normalizer: 1` gives the plain sum of per-sample losses (`lossScale: 'sum'`).
 */
export interface SingleStepOptions extends StepOptionsBase {
  readonly normalizer?: number;
}

/**
 * BBN step options. The loss α·CE(z,y_u) + (1−α)·CE(z,y_r) has two terms with their own
 * normalisers (they differ only with class weights); a single number applies to both.
 */
export interface BbnStepOptions extends StepOptionsBase {
  readonly normalizer?: number | { readonly uniform: number; readonly reversed: number };
}

/** A labelled batch: NHWC images flattened (length n·h·w·c) and n labels. */
export interface LabeledBatch {
  readonly x: Float32Array;
  readonly y: ArrayLike<number>;
}

/** The two paired batches of one BBN step (row i of each forms a pair; equal sizes). */
export interface BbnBatch {
  /** Uniform (instance-balanced) batch, fed to trunk + cb_block. */
  readonly xu: Float32Array;
  readonly yu: ArrayLike<number>;
  /** Reversed-sampler batch, fed to trunk + rb_block in a separate pass. */
  readonly xr: Float32Array;
  readonly yr: ArrayLike<number>;
}

/** What a step returns. The update is NOT applied: the caller allreduces, then runs the optimizer. */
export interface StepResult {
  /** The objective whose gradient is `grads` (PyTorch mean CE with the default normalizer). */
  readonly loss: number;
  /** Local training accuracy (BBN: α·acc(z,y_u) + (1−α)·acc(z,y_r), BBN-SPEC §2.2). */
  readonly accuracy: number;
  /** `accuracy · count`, summable across ranks. */
  readonly correct: number;
  /** Local batch size. */
  readonly count: number;
  /** Flat gradient in `layout()` order (without weight decay: the optimizer adds it). */
  readonly grads: Float32Array;
}

/** Result of `evaluate`. */
export interface EvalResult {
  /** Mean (unweighted) CE over the samples. */
  readonly loss: number;
  /** Fraction with argmax(logits) = label. */
  readonly top1: number;
  /** argmax per sample (first maximum on ties, like PyTorch). */
  readonly predictions: Int32Array;
  /** Logits `[n, C]` row-major. */
  readonly logits: Float32Array;
}

/** What both model kinds offer. */
export interface ModelBase {
  readonly spec: ModelSpec;
  /** `architecture#hash`, stored in states and compared on load. */
  readonly signature: string;
  readonly numParams: number;
  readonly numBuffers: number;
  /** Pooled feature size D per branch (64 for ResNet-32, 2048 for ResNet-50). */
  readonly featureDim: number;
  /** Parameters in flat order. */
  layout(): LayoutEntry[];
  /** BN running statistics in flat order. */
  bufferLayout(): LayoutEntry[];
  /** The classifier weight and bias: the tail of the flat parameter buffer. */
  classifierRange(): ParamRange;
  getParams(): Float32Array;
  setParams(params: Float32Array): void;
  getBuffers(): Float32Array;
  setBuffers(buffers: Float32Array): void;
  getState(): ModelState;
  /** Throws `ModelError` if the signature or a length differs. */
  setState(state: ModelState): void;
  /** Eval-mode logits `[n, C]`, computed in batches of `batchSize` (default 64). */
  predict(x: Float32Array, batchSize?: number): Float32Array;
  /** Eval-mode loss, top-1 and predictions. */
  evaluate(x: Float32Array, y: ArrayLike<number>, batchSize?: number): EvalResult;
  /** How many running-statistic updates each BN has had (PyTorch `num_batches_tracked`); not saved in states. */
  bnBatchesTracked(): Map<string, number>;
  /** Frees every variable. The model must not be used afterwards. */
  dispose(): void;
}

/** The bilateral-branch network. */
export interface BbnModel extends ModelBase {
  readonly variant: 'bbn';
  /** One BBN training step at cumulative-learning weight `alpha` (BBN-SPEC §2). */
  step(batch: BbnBatch, alpha: number, options?: BbnStepOptions): StepResult;
  /** Eval-mode pooled features of both branches on the same images (trunk once), `[n, D]` each. */
  features(x: Float32Array, batchSize?: number): { cb: Float32Array; rb: Float32Array };
}

/** A single-branch network (CE, re-weighting, re-sampling, DRW, decoupling baselines). */
export interface SingleModel extends ModelBase {
  readonly variant: 'single';
  /** One CE training step. */
  step(batch: LabeledBatch, options?: SingleStepOptions): StepResult;
  /** Eval-mode pooled features `[n, D]`. */
  features(x: Float32Array, batchSize?: number): Float32Array;
}

/** Either model kind. */
export type Model = BbnModel | SingleModel;

/** A bad model spec, input, buffer or state; the message names the field and the value. */
export class ModelError extends Error {
  override name = 'ModelError';
}
