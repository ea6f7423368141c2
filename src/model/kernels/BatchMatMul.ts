/**
 * BatchMatMul for wasm that keeps transposed products on XNNPACK. The stock 4.22 kernel uses the
 * XNNPACK fully-connected operator only for un-transposed, unbatched products and a scalar
 * triple loop otherwise, and every matMul gradient is a transposed product (dA = dC·Bᵀ,
 * dB = Aᵀ·dC). Here a transposed operand is transposed once with the Transpose kernel (memory
 * bound) and the product goes to the fast path. Batched products keep the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { release, reshape, runStock, transpose, wasmKernel } from './kernel_utils.ts';

/** Below this many multiply-adds the stock scalar loop beats two transposes plus XNNPACK set-up. */
const SMALL_PRODUCT = 1 << 18;

/** `t` as a 2-D matrix, transposed when `flip`; the caller frees the result. */
function asMatrix(backend: BackendWasm, t: tf.TensorInfo, flip: boolean): tf.TensorInfo {
  const rows = t.shape[t.shape.length - 2];
  const cols = t.shape[t.shape.length - 1];
  const m = reshape(backend, t, [rows, cols]);
  if (!flip) return m;
  const mt = transpose(backend, m, [1, 0]);
  release(backend, m);
  return mt;
}

/** Kernel config: replaces the stock BatchMatMul (fast path: float32, batch 1, any transposes). */
export const batchMatMulConfig = wasmKernel<keyof tf.BatchMatMulInputs, tf.BatchMatMulAttrs>(
  tf.BatchMatMul,
  ['a', 'b'],
  ({ a, b }, attrs, backend) => {
    const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
    const transposed = attrs.transposeA || attrs.transposeB;
    const macs =
      tf.util.sizeFromShape(a.shape) * b.shape[attrs.transposeB ? b.shape.length - 2 : b.shape.length - 1];
    if (
      !transposed ||
      macs < SMALL_PRODUCT ||
      batchA !== 1 ||
      batchB !== 1 ||
      a.dtype !== 'float32' ||
      b.dtype !== 'float32'
    ) {
      return runStock(backend, tf.BatchMatMul, { a, b }, attrs as unknown as tf.NamedAttrMap);
    }
    const a2 = asMatrix(backend, a, attrs.transposeA);
    const b2 = asMatrix(backend, b, attrs.transposeB);
    const product = runStock(
      backend,
      tf.BatchMatMul,
      { a: a2, b: b2 },
      { transposeA: false, transposeB: false },
    );
    release(backend, a2, b2);
    // Same output rank as the stock kernel: the broadcast batch dims (all 1) then [rows, cols].
    const outShape = [
      ...(a.shape.length >= b.shape.length ? a.shape : b.shape).slice(0, -2),
      ...product.shape.slice(-2),
    ];
    const out = reshape(backend, product, outShape);
    release(backend, product);
    return out;
  },
);
