/**
 * Add for wasm with a fast path for a tensor plus a per-channel vector: one XNNPACK 1x1
 * depthwise pass with the vector as bias (`channel_affine.ts`). Every other case runs the stock
 * kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { channelAffine, channelOperands } from './channel_affine.ts';
import { runStock, wasmKernel } from './kernel_utils.ts';

/** Kernel config: replaces the stock Add (fast path: full + per-channel, float32). */
export const addConfig = wasmKernel<'a' | 'b', object>(tf.Add, ['a', 'b'], ({ a, b }, _attrs, backend) => {
  const ops = channelOperands(a, b);
  if (ops === null) return runStock(backend, tf.Add, { a, b });
  return channelAffine(backend, ops.full, null, ops.vec);
});
