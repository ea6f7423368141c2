/**
 * Conv2DBackpropFilter (dW) for wasm, which tfjs-backend-wasm 4.22 does not register at all.
 *
 * dW[i, j, c, o] = Σ_{n,y,x} xpad[n, y·sh + i, x·sw + j, c] · dy[n, y, x, o]
 *
 * is itself a forward convolution once the batch axis becomes the contraction axis: with
 * `xT = x` as `[C, H, W, N]` (batch = input channel, channels = images) and `dyT = dy` as
 * `[OH, OW, N, O]` (a filter of size OH×OW, dilated by the stride), the XNNPACK convolution
 * `conv(xT, dyT, dilation = stride, explicit pad)` yields `[C, KH, KW, O]`. Two transposes in and
 * one small one out are memory-bound; the multiply-adds all run in the XNNPACK GEMM. Unpadded 1x1
 * filters (ResNet-50's bottlenecks and projections) take one matrix product instead.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  conv2d,
  pad,
  release,
  requireFloat32,
  requireNhwc,
  reshape,
  run,
  slice,
  transpose,
  wasmKernel,
} from './kernel_utils.ts';

/**
 * `x[:, ::sh, ::sw, :]` cut to `oh × ow` positions, by zero-padding to a multiple of the stride,
 * viewing rows and columns as (position, phase) pairs and slicing phase 0 (the stock wasm
 * StridedSlice is an element-wise JS loop, about 50x slower than this).
 */
function subsample(
  backend: BackendWasm,
  x: tf.TensorInfo,
  sh: number,
  sw: number,
  oh: number,
  ow: number,
): tf.TensorInfo {
  const [n, h, w, c] = x.shape;
  const rows = oh * sh;
  const cols = ow * sw;
  // Exactly the grid: a view; more: cut it; less (a partial last stride): cut, then zero-pad.
  let grid =
    h === rows && w === cols
      ? reshape(backend, x, x.shape)
      : slice(backend, x, [0, 0, 0, 0], [n, Math.min(h, rows), Math.min(w, cols), c]);
  if (h < rows || w < cols) {
    const padded = pad(backend, grid, [
      [0, 0],
      [0, Math.max(0, rows - h)],
      [0, Math.max(0, cols - w)],
      [0, 0],
    ]);
    release(backend, grid);
    grid = padded;
  }
  const six = reshape(backend, grid, [n, oh, sh, ow, sw, c]);
  release(backend, grid);
  const picked = slice(backend, six, [0, 0, 0, 0, 0, 0], [n, oh, 1, ow, 1, c]);
  release(backend, six);
  const out = reshape(backend, picked, [n, oh, ow, c]);
  release(backend, picked);
  return out;
}

/**
 * dW of an unpadded 1x1 conv is one matrix product, `x_sᵀ · dy` over all N·OH·OW positions
 * (x_s: x at the strided positions). As a convolution, XNNPACK would see only N channels per
 * tap, which is slow at small batches; BatchMatMul keeps the whole contraction in one GEMM.
 */
function pointwiseFilterGrad(
  backend: BackendWasm,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo {
  const { batchSize: n, outHeight: oh, outWidth: ow, inChannels: ci, outChannels: co } = info;
  const { strideHeight: sh, strideWidth: sw } = info;
  const strided = sh > 1 || sw > 1;
  const xs = strided ? subsample(backend, x, sh, sw, oh, ow) : x;
  const a = reshape(backend, xs, [n * oh * ow, ci]);
  const b = reshape(backend, dy, [n * oh * ow, co]);
  if (strided) release(backend, xs);
  const prod = run(backend, tf.BatchMatMul, { a, b }, { transposeA: true, transposeB: false });
  release(backend, a, b);
  const dw = reshape(backend, prod, [1, 1, ci, co]);
  release(backend, prod);
  return dw;
}

/** Kernel config: registers Conv2DBackpropFilter (NHWC, any kernel size, stride and padding). */
export const conv2DBackpropFilterConfig = wasmKernel<
  keyof tf.Conv2DBackpropFilterInputs,
  tf.Conv2DBackpropFilterAttrs
>(tf.Conv2DBackpropFilter, ['x', 'dy'], ({ x, dy }, attrs, backend) => {
  requireNhwc(tf.Conv2DBackpropFilter, attrs.dataFormat);
  requireFloat32(tf.Conv2DBackpropFilter, 'x', x);
  requireFloat32(tf.Conv2DBackpropFilter, 'dy', dy);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const { filterHeight: kh, filterWidth: kw, inHeight: h, inWidth: w } = info;
  const { outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  // The dilated dy "filter" spans (oh-1)·sh + 1 rows; the conv output must cover kh taps. Pad the
  // far side just enough (never negative: surplus input rows give extra outputs, cut below).
  const bottom = Math.max(0, (oh - 1) * sh + kh - h - top);
  const right = Math.max(0, (ow - 1) * sw + kw - w - left);

  const unpadded = top === 0 && left === 0 && info.padInfo.bottom === 0 && info.padInfo.right === 0;
  if (kh === 1 && kw === 1 && unpadded) return pointwiseFilterGrad(backend, x, dy, info);

  const xT = transpose(backend, x, [3, 1, 2, 0]);
  const dyT = transpose(backend, dy, [1, 2, 0, 3]);
  let r = conv2d(backend, xT, dyT, {
    strides: [1, 1],
    dilations: [sh, sw],
    pad: [
      [0, 0],
      [top, bottom],
      [left, right],
      [0, 0],
    ],
  });
  release(backend, xT, dyT);
  const [ci, rh, rw, co] = r.shape;
  if (rh !== kh || rw !== kw) {
    const cut = slice(backend, r, [0, 0, 0, 0], [ci, kh, kw, co]);
    release(backend, r);
    r = cut;
  }
  const dw = transpose(backend, r, [1, 2, 0, 3]);
  release(backend, r);
  return dw;
});
