/**
 * Sum for wasm with a transpose-free fast path for channel-wise sums (the BatchNorm and
 * broadcast gradients): the XNNPACK average-pooling mean times the window size, see
 * `reduce_utils.ts`. Other axis sets, and non-float32 inputs, run the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { release, runStock, wasmKernel } from './kernel_utils.ts';
import { planPoolReduction, poolMean, reducedShape } from './reduce_utils.ts';

/** Kernel config: replaces the stock Sum (fast path: reduce a run of axes ending before the last). */
export const sumConfig = wasmKernel<keyof tf.SumInputs, tf.SumAttrs>(
  tf.Sum,
  ['x'],
  ({ x }, attrs, backend) => {
    const axes = tf.util.parseAxisParam(attrs.axis, x.shape);
    const plan = x.dtype === 'float32' ? planPoolReduction(x.shape, axes) : null;
    if (plan === null) return runStock(backend, tf.Sum, { x }, attrs as unknown as tf.NamedAttrMap);
    const pooled = poolMean(backend, x, plan);
    const out = backend.makeOutput(reducedShape(x.shape, axes, attrs.keepDims ?? false), 'float32');
    // The mean is small (outer × channels): scale it into the output in JS.
    const mean = backend.typedArrayFromHeap(pooled) as Float32Array;
    const sum = backend.typedArrayFromHeap(out) as Float32Array;
    for (let i = 0; i < sum.length; i++) sum[i] = mean[i] * plan.window;
    release(backend, pooled);
    return out;
  },
);
