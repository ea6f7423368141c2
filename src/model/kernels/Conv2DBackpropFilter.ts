/**
 * Conv2DBackpropFilter (dW) for wasm, which tfjs-backend-wasm 4.22 does not register at all.
 *
 * dW[i, j, c, o] = Σ_{n,y,x} xpad[n, y·sh + i, x·sw + j, c] · dy[n, y, x, o]
 *
 * is itself a forward convolution once the batch axis becomes the contraction axis: with
 * `xT = x` as `[C, H, W, N]` (batch = input channel, channels = images) and `dyT = dy` as
 * `[OH, OW, N, O]` (a filter of size OH×OW, dilated by the stride), the XNNPACK convolution
 * `conv(xT, dyT, dilation = stride, explicit pad)` yields `[C, KH, KW, O]`. Two transposes in and
 * one small one out are memory-bound; the multiply-adds all run in the XNNPACK GEMM.
 */
import * as tf from '@tensorflow/tfjs';
import {
  conv2d,
  release,
  requireFloat32,
  requireNhwc,
  slice,
  transpose,
  wasmKernel,
} from './kernel_utils.ts';

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
