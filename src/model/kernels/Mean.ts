/**
 * Mean for wasm with a transpose-free fast path for channel-wise means (BatchNorm moments, global
 * average pooling): one XNNPACK average-pooling pass, see `reduce_utils.ts`. Other axis sets,
 * and non-float32 inputs, run the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { release, reshape, runStock, wasmKernel } from './kernel_utils.ts';
import { planPoolReduction, poolMean, reducedShape } from './reduce_utils.ts';

/** Kernel config: replaces the stock Mean (fast path: reduce a run of axes ending before the last). */
export const meanConfig = wasmKernel<keyof tf.MeanInputs, tf.MeanAttrs>(
  tf.Mean,
  ['x'],
  ({ x }, attrs, backend) => {
    const axes = tf.util.parseAxisParam(attrs.axis, x.shape);
    const plan = x.dtype === 'float32' ? planPoolReduction(x.shape, axes) : null;
    if (plan === null) return runStock(backend, tf.Mean, { x }, attrs as unknown as tf.NamedAttrMap);
    const pooled = poolMean(backend, x, plan);
    const out = reshape(backend, pooled, reducedShape(x.shape, axes, attrs.keepDims ?? false));
    release(backend, pooled);
    return out;
  },
);
