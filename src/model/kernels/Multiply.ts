/**
 * Multiply for wasm with a fast path for a tensor times a per-channel vector (BatchNorm and its
 * gradient): one XNNPACK 1x1 depthwise pass (`channel_affine.ts`) instead of the stock
 * broadcasting loop over rows of C elements. Every other case runs the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { channelAffine, channelOperands } from './channel_affine.ts';
import { runStock, wasmKernel } from './kernel_utils.ts';

/** Kernel config: replaces the stock Multiply (fast path: full ⊙ per-channel, float32). */
export const multiplyConfig = wasmKernel<'a' | 'b', object>(
  tf.Multiply,
  ['a', 'b'],
  ({ a, b }, _attrs, backend) => {
    const ops = channelOperands(a, b);
    if (ops === null) return runStock(backend, tf.Multiply, { a, b });
    return channelAffine(backend, ops.full, ops.vec, null);
  },
);
