/**
 * Per-channel affine maps `y = x·a + b` (a, b indexed by the last axis) through XNNPACK's 1x1
 * depthwise convolution. BatchNorm and its gradient multiply and shift NHWC tensors by
 * per-channel vectors dozens of times a step; the stock broadcasting binary ops walk the tensor
 * in rows of C (16-64) elements and the stock FusedBatchNorm is a scalar loop, both 2-3x slower
 * than one depthwise pass, which also fuses the multiply with the add.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { release, reshape, run } from './kernel_utils.ts';

/** Fewer channels than this are a near-scalar broadcast, which the stock op handles well. */
const MIN_CHANNELS = 8;

/** Below this many elements the stock op costs less than setting up an XNNPACK operator. */
const MIN_FULL_SIZE = 4096;

/** A binary op's operands split into the full tensor and the per-channel vector. */
export interface ChannelOperands {
  readonly full: tf.TensorInfo;
  readonly vec: tf.TensorInfo;
  /** Whether the vector was the first operand (matters for Sub). */
  readonly vecFirst: boolean;
}

/** Whether `v` holds one value per channel of `x` (shape `[C]` or `[1, …, 1, C]`, rank ≤ x's, C ≥ 8). */
export function isChannelVector(v: tf.TensorInfo, x: tf.TensorInfo): boolean {
  const c = x.shape[x.shape.length - 1];
  if (c < MIN_CHANNELS || x.shape.length < 2 || v.shape.length === 0 || v.shape.length > x.shape.length)
    return false;
  if (v.shape[v.shape.length - 1] !== c) return false;
  return v.shape.every((d, i) => i === v.shape.length - 1 || d === 1);
}

/**
 * Recognises `full ⊙ vec` / `vec ⊙ full` with float32 operands where `vec` is per-channel and
 * `full` is big enough to gain (small ops stay on the stock kernel).
 */
export function channelOperands(a: tf.TensorInfo, b: tf.TensorInfo): ChannelOperands | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const big = (t: tf.TensorInfo) => tf.util.sizeFromShape(t.shape) >= MIN_FULL_SIZE;
  if (big(a) && isChannelVector(b, a)) return { full: a, vec: b, vecFirst: false };
  if (big(b) && isChannelVector(a, b)) return { full: b, vec: a, vecFirst: true };
  return null;
}

/** A `[C]` float32 tensor on the backend holding `values` (the caller frees it). */
export function channelTensor(backend: BackendWasm, values: Float32Array): tf.TensorInfo {
  const out = backend.makeOutput([values.length], 'float32');
  (backend.typedArrayFromHeap(out) as Float32Array).set(values);
  return out;
}

/** The values of a small tensor, copied out of the heap. */
export function channelValues(backend: BackendWasm, t: tf.TensorInfo): Float32Array {
  return (backend.typedArrayFromHeap(t) as Float32Array).slice();
}

/**
 * `x·scale + bias` per channel, shaped like `x`. `scale` and `bias` hold C values (any shape);
 * a null scale means 1, a null bias means 0.
 */
export function channelAffine(
  backend: BackendWasm,
  x: tf.TensorInfo,
  scale: tf.TensorInfo | null,
  bias: tf.TensorInfo | null,
): tf.TensorInfo {
  const c = x.shape[x.shape.length - 1];
  const ones = scale === null ? channelTensor(backend, new Float32Array(c).fill(1)) : null;
  const filter = reshape(backend, scale ?? (ones as tf.TensorInfo), [1, 1, c, 1]);
  const bias1d = bias === null ? null : reshape(backend, bias, [c]);
  const x4 = reshape(
    backend,
    x,
    x.shape.length === 4 ? x.shape : [1, tf.util.sizeFromShape(x.shape) / c, 1, c],
  );
  const inputs: tf.NamedTensorInfoMap = { x: x4, filter };
  if (bias1d !== null) inputs.bias = bias1d;
  const y = run(backend, tf.FusedDepthwiseConv2D, inputs, {
    strides: [1, 1],
    pad: 'valid',
    dataFormat: 'NHWC',
    dilations: [1, 1],
    activation: 'linear',
  });
  release(backend, x4, filter);
  if (bias1d !== null) release(backend, bias1d);
  if (ones !== null) release(backend, ones);
  const out = reshape(backend, y, x.shape);
  release(backend, y);
  return out;
}
