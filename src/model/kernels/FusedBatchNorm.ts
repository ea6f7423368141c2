/**
 * FusedBatchNorm (inference form `(x − mean)·scale/√(var + ε) + offset`, also what training-mode
 * BatchNorm runs after `tf.moments`) for wasm as one per-channel affine pass: the per-channel
 * `a = scale/√(var + ε)` and `b = offset − mean·a` are computed on the C values in JS, then
 * `x·a + b` is one XNNPACK depthwise pass (`channel_affine.ts`). Statistics that are not one value
 * per channel, and non-float32 data, run the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { channelAffine, channelTensor, channelValues, isChannelVector } from './channel_affine.ts';
import { release, runStock, wasmKernel } from './kernel_utils.ts';

/** Kernel config: replaces the stock FusedBatchNorm (fast path: per-channel statistics). */
export const fusedBatchNormConfig = wasmKernel<'x' | 'mean' | 'variance', tf.FusedBatchNormAttrs>(
  tf.FusedBatchNorm,
  ['x', 'mean', 'variance'],
  ({ x, mean, variance }, attrs, backend, all) => {
    const { offset, scale } = all;
    const stats = [mean, variance, offset, scale].filter((t): t is tf.TensorInfo => t !== undefined);
    const perChannel =
      x.dtype === 'float32' && stats.every((t) => t.dtype === 'float32' && isChannelVector(t, x));
    if (!perChannel || tf.util.sizeFromShape(x.shape) === 0) {
      return runStock(backend, tf.FusedBatchNorm, all, attrs as unknown as tf.NamedAttrMap);
    }
    const m = channelValues(backend, mean);
    const v = channelValues(backend, variance);
    const g = scale === undefined ? null : channelValues(backend, scale);
    const o = offset === undefined ? null : channelValues(backend, offset);
    const a = new Float32Array(m.length);
    const b = new Float32Array(m.length);
    for (let i = 0; i < m.length; i++) {
      a[i] = (g === null ? 1 : g[i]) / Math.sqrt(v[i] + attrs.varianceEpsilon);
      b[i] = (o === null ? 0 : o[i]) - m[i] * a[i];
    }
    const at = channelTensor(backend, a);
    const bt = channelTensor(backend, b);
    const y = channelAffine(backend, x, at, bt);
    release(backend, at, bt);
    return y;
  },
);
