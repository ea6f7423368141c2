/**
 * Building blocks with PyTorch semantics on channels-last tensors: conv without bias (PyTorch
 * symmetric padding), BatchNorm (eps 1e-5, momentum 0.1, unbiased running variance), Linear,
 * global average pooling and the option-A shortcut. Modules only register specs at construction
 * and resolve their variables from the forward context's store, so the same module tree serves
 * parameter counting, training and inference.
 */
import * as tf from '@tensorflow/tfjs';
import { type BnGammaInit, ModelError } from './api.ts';
import type { ParamRegistry, ParamStore, TensorRef } from './params.ts';
import { fusedBatchNormInfer, fusedBatchNormTrain, nativeTf, reluGrad } from './tf-native.ts';

/** PyTorch BatchNorm epsilon (BBN-SPEC §8.4; TF.js defaults to 1e-3). */
export const BN_EPS = 1e-5;
/** PyTorch BatchNorm momentum: `running = 0.9·running + 0.1·batch` (BBN-SPEC §8.4). */
export const BN_MOMENTUM = 0.1;

/** One pending running-statistics update, recorded by a train-mode BN forward. */
export interface BnStatUpdate {
  readonly bn: BatchNorm;
  /** Batch mean (kept; the caller disposes it). */
  readonly mean: tf.Tensor1D;
  /** UNBIASED batch variance (kept; the caller disposes it). */
  readonly varUnbiased: tf.Tensor1D;
}

/** State threaded through a forward pass. */
export interface ForwardCtx {
  readonly store: ParamStore;
  /** Train mode: BN normalises with batch statistics; eval: with running statistics. */
  readonly training: boolean;
  /** Where train-mode BNs record their updates, in execution order; null = do not record. */
  readonly stats: BnStatUpdate[] | null;
}

/** A module on NHWC feature maps. */
export interface Module4D {
  forward(ctx: ForwardCtx, x: tf.Tensor4D): tf.Tensor4D;
}

/**
 * A built backbone: the shared trunk, the branch blocks (BBN: [cb_block, rb_block]; single: one
 * identity branch, the last block staying in the trunk) and the pooled feature size per branch.
 */
export interface Architecture {
  readonly trunk: Module4D;
  readonly branches: readonly Module4D[];
  readonly featureDim: number;
}

/** Modules applied in order. */
export class Sequential implements Module4D {
  constructor(readonly modules: readonly Module4D[]) {}

  forward(ctx: ForwardCtx, x: tf.Tensor4D): tf.Tensor4D {
    let h = x;
    for (const m of this.modules) h = m.forward(ctx, h);
    return h;
  }
}

/** Conv weight init: kaiming-normal fan_in (CIFAR ResNet) or PyTorch's default U(±1/√fan_in). */
export type ConvInit = 'kaiming_normal' | 'torch_default';

/** 2-D convolution without bias, kernel `[k, k, cin, cout]`, PyTorch padding `pad` on each side. */
export class Conv2d implements Module4D {
  private readonly w: TensorRef;

  constructor(
    reg: ParamRegistry,
    name: string,
    readonly cin: number,
    readonly cout: number,
    readonly k: number,
    readonly stride: number,
    readonly pad: number,
    init: ConvInit,
  ) {
    const fanIn = k * k * cin;
    this.w = reg.param(
      `${name}.weight`,
      [k, k, cin, cout],
      init === 'kaiming_normal'
        ? { kind: 'normal', std: Math.sqrt(2 / fanIn) }
        : { kind: 'uniform', low: -1 / Math.sqrt(fanIn), high: 1 / Math.sqrt(fanIn) },
    );
  }

  forward(ctx: ForwardCtx, x: tf.Tensor4D): tf.Tensor4D {
    const w = ctx.store.use(this.w) as tf.Tensor4D;
    if (this.pad === 0) return tf.conv2d(x, w, this.stride, 'valid');
    // Stride 1 with k = 2·pad + 1: TF 'same' pads pad on each side, exactly like PyTorch.
    if (this.stride === 1 && this.k === 2 * this.pad + 1) return tf.conv2d(x, w, 1, 'same');
    // Otherwise TF 'same' would pad asymmetrically (bottom/right); pad explicitly (BBN-SPEC §8.10).
    const p = this.pad;
    const padded = tf.pad(x, [
      [0, 0],
      [p, p],
      [p, p],
      [0, 0],
    ]);
    return tf.conv2d(padded, w, this.stride, 'valid');
  }
}

/** BatchNorm2d over the channel (last) axis with PyTorch semantics. */
export class BatchNorm implements Module4D {
  private readonly gamma: TensorRef;
  private readonly beta: TensorRef;
  /** Running mean/var buffers. */
  readonly runningMean: TensorRef;
  readonly runningVar: TensorRef;

  constructor(
    reg: ParamRegistry,
    readonly name: string,
    readonly channels: number,
    gammaInit: BnGammaInit,
  ) {
    this.gamma = reg.param(
      `${name}.weight`,
      [channels],
      gammaInit === 'ones' ? { kind: 'const', value: 1 } : { kind: 'uniform', low: 0, high: 1 },
    );
    this.beta = reg.param(`${name}.bias`, [channels], { kind: 'const', value: 0 });
    this.runningMean = reg.buffer(`${name}.running_mean`, [channels], { kind: 'const', value: 0 });
    this.runningVar = reg.buffer(`${name}.running_var`, [channels], { kind: 'const', value: 1 });
  }

  forward(ctx: ForwardCtx, x: tf.Tensor4D): tf.Tensor4D {
    const s = ctx.store;
    const gamma = s.use(this.gamma) as tf.Tensor1D;
    const beta = s.use(this.beta) as tf.Tensor1D;
    const native = nativeTf();
    if (!ctx.training && native) {
      const mean = s.get(this.runningMean) as tf.Tensor1D;
      const variance = s.get(this.runningVar) as tf.Tensor1D;
      return fusedBatchNormInfer(native, x, gamma, beta, mean, variance, BN_EPS);
    }
    if (!ctx.training) {
      // y = x·scale + shift with scale = γ/√(running_var + eps), shift = β − running_mean·scale.
      const scale = tf.mul(gamma, tf.rsqrt(tf.add(s.get(this.runningVar), BN_EPS)));
      const shift = tf.sub(beta, tf.mul(s.get(this.runningMean), scale));
      return tf.add(tf.mul(x, scale), shift) as tf.Tensor4D;
    }
    const n = x.size / this.channels;
    if (n < 2) {
      throw new ModelError(
        `${this.name}: train-mode BatchNorm needs more than 1 value per channel, got ${n}`,
      );
    }
    const record = ctx.stats
      ? (mean: tf.Tensor1D, varUnbiased: tf.Tensor1D) =>
          ctx.stats?.push({
            bn: this,
            mean: tf.keep(mean.clone()),
            varUnbiased: tf.keep(varUnbiased.clone()),
          })
      : null;
    return native
      ? fusedBatchNormTrain(native, x, gamma, beta, BN_EPS, record)
      : batchNormTrain(x, gamma, beta, n, record);
  }

  /** `running = (1 − m)·running + m·batch` for mean and (unbiased) variance. */
  applyUpdate(store: ParamStore, u: BnStatUpdate): void {
    const rm = store.get(this.runningMean);
    const rv = store.get(this.runningVar);
    tf.tidy(() => {
      rm.assign(tf.add(tf.mul(rm, 1 - BN_MOMENTUM), tf.mul(u.mean, BN_MOMENTUM)));
      rv.assign(tf.add(tf.mul(rv, 1 - BN_MOMENTUM), tf.mul(u.varUnbiased, BN_MOMENTUM)));
    });
    store.bnBatchesTracked.set(this.name, (store.bnBatchesTracked.get(this.name) ?? 0) + 1);
  }
}

/**
 * Train-mode BN, normalising with the biased batch variance, with the closed-form gradient
 *   dx = γ/σ·(dy − mean(dy) − x̂·mean(dy·x̂)),  dγ = Σ dy·x̂,  dβ = Σ dy
 * (the exact gradient through the batch statistics). tfjs's own FusedBatchNorm gradient plus the
 * moments' gradient take ~20 full-size kernels per BN; this takes 6. The wasm and cpu backends
 * use it; TensorFlow runs its own fused kernels instead (tf-native.ts).
 */
function batchNormTrain(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  n: number,
  record: ((mean: tf.Tensor1D, varUnbiased: tf.Tensor1D) => void) | null,
): tf.Tensor4D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, g, b] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const axes = [0, 1, 2];
    const mean = tf.mean(xi, axes) as tf.Tensor1D;
    const xc = tf.sub(xi, mean);
    const varBiased = tf.mean(tf.square(xc), axes) as tf.Tensor1D;
    const inv = tf.rsqrt(tf.add(varBiased, BN_EPS));
    record?.(mean, tf.mul(varBiased, n / (n - 1)) as tf.Tensor1D);
    save([xc, inv, g]);
    return {
      value: tf.add(tf.mul(xc, tf.mul(inv, g)), b) as tf.Tensor4D,
      // Tidy frees the activation-sized intermediates at once instead of at the end of the
      // backward pass (measured on wasm at batch 128: 2077 MB peak without, 1323 MB with).
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sxc, sinv, sg] = saved;
          const xhat = tf.mul(sxc, sinv);
          const dbeta = tf.sum(dy, axes);
          const dgamma = tf.sum(tf.mul(dy, xhat), axes);
          const centred = tf.sub(tf.sub(dy, tf.div(dbeta, n)), tf.mul(xhat, tf.div(dgamma, n)));
          return [tf.mul(centred, tf.mul(sg, sinv)), dgamma, dbeta];
        }),
    };
  });
  return op(x, gamma, beta) as tf.Tensor4D;
}

/**
 * ReLU whose gradient is dy·[y > 0] (3 kernels; TensorFlow's ReluGrad, one, on that backend);
 * tfjs's own goes through `step`, which tfjs-node runs as 5 kernels (IsNan, Fill, Greater, Select, ...).
 */
export const reluOp: (x: tf.Tensor4D) => tf.Tensor4D = tf.customGrad(
  (...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const y = tf.relu(x);
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const native = nativeTf();
        return native
          ? reluGrad(native, dy, saved[0])
          : tf.mul(dy, tf.cast(tf.greater(saved[0], 0), 'float32'));
      },
    };
  },
) as (x: tf.Tensor4D) => tf.Tensor4D;

/** Applies recorded BN updates in order (the order of the forward passes), then frees them. */
export function applyBnUpdates(store: ParamStore, updates: readonly BnStatUpdate[]): void {
  for (const u of updates) u.bn.applyUpdate(store, u);
  disposeBnUpdates(updates);
}

/** Frees recorded BN updates without applying them. */
export function disposeBnUpdates(updates: readonly BnStatUpdate[]): void {
  for (const u of updates) {
    u.mean.dispose();
    u.varUnbiased.dispose();
  }
}

/** ReLU as a module. */
export const relu: Module4D = { forward: (_ctx, x) => reluOp(x) };

/** Linear layer `y = x·W + b` with `W: [in, out]`, PyTorch default init U(±1/√in) for W and b. */
export class Linear {
  readonly weight: TensorRef;
  readonly bias: TensorRef;

  constructor(
    reg: ParamRegistry,
    name: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = reg.param(`${name}.weight`, [inFeatures, outFeatures], {
      kind: 'uniform',
      low: -bound,
      high: bound,
    });
    this.bias = reg.param(`${name}.bias`, [outFeatures], { kind: 'uniform', low: -bound, high: bound });
  }

  forward(store: ParamStore, x: tf.Tensor2D): tf.Tensor2D {
    return linear(x, store.use(this.weight) as tf.Tensor2D, store.use(this.bias) as tf.Tensor1D);
  }
}

/** `x·W + b` with `W: [in, out]`. */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  return tf.add(tf.matMul(x, w), b);
}

/** Global average pooling `[B,H,W,C] → [B,C]` (AdaptiveAvgPool2d(1) + view). */
export function gap(x: tf.Tensor4D): tf.Tensor2D {
  return tf.mean(x, [1, 2]) as tf.Tensor2D;
}

/**
 * Option-A shortcut: `F.pad(x[:, :, ::2, ::2], (0,0,0,0, p, p))` in NHWC. tfjs has no StridedSlice
 * gradient, so even rows/columns are taken by a reshape to `[B,H/2,2,W/2,2,C]` and a slice of index
 * 0 on both size-2 axes (an odd side is first zero-padded by one, which keeps the same indices).
 */
export function optionAShortcut(x: tf.Tensor4D, padChannels: number): tf.Tensor4D {
  const [b, h0, w0, c] = x.shape;
  const ph = h0 % 2;
  const pw = w0 % 2;
  const xe =
    ph || pw
      ? tf.pad(x, [
          [0, 0],
          [0, ph],
          [0, pw],
          [0, 0],
        ])
      : x;
  const h = (h0 + ph) / 2;
  const w = (w0 + pw) / 2;
  const even = tf.slice(tf.reshape(xe, [b, h, 2, w, 2, c]), [0, 0, 0, 0, 0, 0], [b, h, 1, w, 1, c]);
  return tf.pad(tf.reshape(even, [b, h, w, c]), [
    [0, 0],
    [0, 0],
    [0, 0],
    [padChannels, padChannels],
  ]);
}
