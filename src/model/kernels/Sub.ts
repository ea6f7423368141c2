/**
 * Sub for wasm with a fast path for a tensor minus a per-channel vector (`x − mean` in BatchNorm
 * and its gradient): one XNNPACK 1x1 depthwise pass with the negated vector as bias
 * (`channel_affine.ts`), or scale −1 when the vector comes first. Every other case runs the
 * stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { channelAffine, channelOperands, channelTensor, channelValues } from './channel_affine.ts';
import { release, runStock, wasmKernel } from './kernel_utils.ts';

/** Kernel config: replaces the stock Sub (fast path: full − per-channel or per-channel − full). */
export const subConfig = wasmKernel<'a' | 'b', object>(tf.Sub, ['a', 'b'], ({ a, b }, _attrs, backend) => {
  const ops = channelOperands(a, b);
  if (ops === null) return runStock(backend, tf.Sub, { a, b });
  const v = channelValues(backend, ops.vec);
  if (ops.vecFirst) {
    // v − x = x·(−1) + v
    const minusOne = channelTensor(backend, new Float32Array(v.length).fill(-1));
    const y = channelAffine(backend, ops.full, minusOne, ops.vec);
    release(backend, minusOne);
    return y;
  }
  const negated = channelTensor(
    backend,
    v.map((e) => -e),
  );
  const y = channelAffine(backend, ops.full, null, negated);
  release(backend, negated);
  return y;
});
