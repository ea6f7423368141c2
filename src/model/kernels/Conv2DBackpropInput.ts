/**
 * Conv2DBackpropInput (dX) for wasm. The stock 4.22 kernel is a scalar C++ loop, 10-15x slower
 * than the XNNPACK forward convolution; this one is a forward convolution:
 *
 *   dX = conv(dilate(dy, stride), rot180(W) with in/out channels swapped, stride 1)
 *
 * with the padding chosen so the output has the input's size. Strided filters larger than 1x1 are
 * split into stride² stride-1 convolutions, one per output phase (`backprop_input_phases.ts`),
 * rather than convolving a zero-dilated dy; a strided 1x1 filter multiplies at dy's resolution
 * (a 1x1 conv) and spreads the products out with `dilate` (a reshape, a pad and a reshape).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { backpropInputByPhases } from './backprop_input_phases.ts';
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

/** Inserts `sh-1` zero rows after every row and `sw-1` zero columns after every column. */
function dilate(backend: BackendWasm, t: tf.TensorInfo, sh: number, sw: number): tf.TensorInfo {
  if (sh === 1 && sw === 1) return reshape(backend, t, t.shape);
  const [n, a, b, c] = t.shape;
  const six = reshape(backend, t, [n, a, 1, b, 1, c]);
  const padded = pad(backend, six, [
    [0, 0],
    [0, 0],
    [0, sh - 1],
    [0, 0],
    [0, sw - 1],
    [0, 0],
  ]);
  release(backend, six);
  const out = reshape(backend, padded, [n, a * sh, b * sw, c]);
  release(backend, padded);
  return out;
}

/**
 * Rows/columns `[-before, len + after)` of an NHWC tensor: a positive margin pads zeros, a
 * negative one cuts. Returns `{t, pads}` where pads are what is left for the convolution to add.
 */
function trimNegative(
  backend: BackendWasm,
  t: tf.TensorInfo,
  pads: [number, number, number, number],
): { t: tf.TensorInfo; pads: [number, number, number, number] } {
  const [top, bottom, left, right] = pads;
  if (top >= 0 && bottom >= 0 && left >= 0 && right >= 0) return { t, pads };
  const [n, h, w, c] = t.shape;
  const cutT = Math.max(0, -top);
  const cutB = Math.max(0, -bottom);
  const cutL = Math.max(0, -left);
  const cutR = Math.max(0, -right);
  const cut = slice(backend, t, [0, cutT, cutL, 0], [n, h - cutT - cutB, w - cutL - cutR, c]);
  release(backend, t);
  return { t: cut, pads: [Math.max(0, top), Math.max(0, bottom), Math.max(0, left), Math.max(0, right)] };
}

/** Kernel config: replaces the stock Conv2DBackpropInput (NHWC, any kernel, stride, padding). */
export const conv2DBackpropInputConfig = wasmKernel<
  keyof tf.Conv2DBackpropInputInputs,
  tf.Conv2DBackpropInputAttrs
>(tf.Conv2DBackpropInput, ['dy', 'filter'], ({ dy, filter }, attrs, backend) => {
  requireNhwc(tf.Conv2DBackpropInput, attrs.dataFormat);
  requireFloat32(tf.Conv2DBackpropInput, 'dy', dy);
  requireFloat32(tf.Conv2DBackpropInput, 'filter', filter);
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const { filterHeight: kh, filterWidth: kw, inHeight: h, inWidth: w } = info;
  const { strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;

  // Rotated filter with swapped channels: [kh, kw, out, in].
  const flipped = run(backend, tf.Reverse, { x: filter }, { dims: [0, 1] });
  const wRot = transpose(backend, flipped, [0, 1, 3, 2]);
  release(backend, flipped);

  if ((sh > 1 || sw > 1) && (kh > 1 || kw > 1)) {
    const dx = backpropInputByPhases(backend, dy, wRot, info.inShape, [sh, sw], { top, left });
    release(backend, wRot);
    return dx;
  }
  let src: tf.TensorInfo;
  let k: [number, number];
  if (kh === 1 && kw === 1) {
    // Multiply at dy's resolution, then spread the products out to the input grid.
    const prod = conv2d(backend, dy, wRot, { strides: [1, 1], dilations: [1, 1], pad: 'valid' });
    src = dilate(backend, prod, sh, sw);
    release(backend, prod);
    k = [1, 1];
  } else {
    src = dilate(backend, dy, sh, sw);
    k = [kh, kw];
  }
  // Output row r reads src rows r + i - (kh-1-top): pad kh-1-top before and enough after for h rows.
  const padTop = k[0] - 1 - top;
  const padLeft = k[1] - 1 - left;
  const padBottom = h - src.shape[1] - padTop + k[0] - 1;
  const padRight = w - src.shape[2] - padLeft + k[1] - 1;
  const trimmed = trimNegative(backend, src, [padTop, padBottom, padLeft, padRight]);
  const [t, b, l, r] = trimmed.pads;
  let dx: tf.TensorInfo;
  if (k[0] === 1 && k[1] === 1) {
    dx =
      t + b + l + r === 0
        ? trimmed.t
        : pad(backend, trimmed.t, [
            [0, 0],
            [t, b],
            [l, r],
            [0, 0],
          ]);
    if (dx !== trimmed.t) release(backend, trimmed.t);
  } else {
    dx = conv2d(backend, trimmed.t, wRot, {
      strides: [1, 1],
      dilations: [1, 1],
      pad: [
        [0, 0],
        [t, b],
        [l, r],
        [0, 0],
      ],
    });
    release(backend, trimmed.t);
  }
  release(backend, wRot);
  return dx;
});
