/**
 * Channel-wise reductions through XNNPACK average pooling. BatchNorm statistics and gradients
 * reduce NHWC tensors over every axis but the channels; the stock wasm Sum/Mean kernels first
 * transpose the channels to the front (a full copy), then reduce. Average pooling reads NHWC as
 * it is: viewing `x` as `[P, M, 1, C]` and pooling an `M×1` window gives the mean over the M
 * middle positions for every leading index P and channel C, in one SIMD pass.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { reshape, run } from './kernel_utils.ts';

/** How a reduction maps onto pooling: `x` as `[outer, window, 1, inner]`. */
export interface PoolPlan {
  readonly outer: number;
  readonly window: number;
  readonly inner: number;
}

/**
 * A pooling plan when `axes` is one contiguous run that ends just before the last axis (the
 * channels stay): e.g. `[0,1,2]` (BatchNorm) or `[1,2]` (global average pooling) of NHWC.
 * Returns null for anything else, which the caller hands to the stock kernel.
 */
export function planPoolReduction(shape: readonly number[], axes: readonly number[]): PoolPlan | null {
  const rank = shape.length;
  if (rank < 2 || axes.length === 0) return null;
  const sorted = [...axes].sort((a, b) => a - b);
  const first = sorted[0];
  for (let i = 0; i < sorted.length; i++) if (sorted[i] !== first + i) return null;
  if (sorted[sorted.length - 1] !== rank - 2) return null;
  const outer = tf.util.sizeFromShape(shape.slice(0, first));
  const window = tf.util.sizeFromShape(shape.slice(first, rank - 1));
  const inner = shape[rank - 1];
  if (outer * window * inner === 0) return null;
  return { outer, window, inner };
}

/** Mean over the plan's window as a `[outer, 1, 1, inner]` float32 tensor (caller frees it). */
export function poolMean(backend: BackendWasm, x: tf.TensorInfo, plan: PoolPlan): tf.TensorInfo {
  const view = reshape(backend, x, [plan.outer, plan.window, 1, plan.inner]);
  if (plan.window === 1) return view;
  const pooled = run(
    backend,
    tf.AvgPool,
    { x: view },
    { filterSize: [plan.window, 1], strides: 1, pad: 'valid' },
  );
  backend.disposeData(view.dataId);
  return pooled;
}

/** Output shape of a reduction over `axes`, keeping reduced axes as 1 when `keepDims`. */
export function reducedShape(shape: readonly number[], axes: readonly number[], keepDims: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}
