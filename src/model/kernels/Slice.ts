/**
 * Slice for wasm by contiguous-run copies on the heap. The stock 4.22 kernel first copies the
 * whole input out of the heap (`readSync`) and, above rank 4, indexes element by element in JS
 * (about 0.5 s for the option-A shortcut's rank-6 slice at batch 128). Here adjacent axes that
 * are taken whole merge into one, so a slice becomes a few nested loops over contiguous runs.
 */
import * as tf from '@tensorflow/tfjs';
import { runStock, wasmKernel } from './kernel_utils.ts';

type Typed = Float32Array | Int32Array | Uint8Array;

/** Runs shorter than this are copied element-wise; longer ones with `set(subarray)`. */
const SHORT_RUN = 64;

/**
 * Merges each axis into the next inner one when that inner (merged) axis is taken whole.
 * Returns outer-to-inner `{dim, begin, size}` triples describing the same slice.
 */
function mergeAxes(shape: readonly number[], begin: readonly number[], size: readonly number[]) {
  const dims: number[] = [];
  const begins: number[] = [];
  const sizes: number[] = [];
  for (let i = shape.length - 1; i >= 0; i--) {
    if (dims.length > 0 && begins[0] === 0 && sizes[0] === dims[0]) {
      dims[0] *= shape[i];
      begins[0] = begin[i] * (dims[0] / shape[i]);
      sizes[0] = size[i] * (dims[0] / shape[i]);
    } else {
      dims.unshift(shape[i]);
      begins.unshift(begin[i]);
      sizes.unshift(size[i]);
    }
  }
  return { dims, begins, sizes };
}

/** Copies the slice described by merged axes from `x` into `out` (row-major, outer to inner). */
function copySlice(x: Typed, out: Typed, dims: number[], begins: number[], sizes: number[]): void {
  const rank = dims.length;
  const strides = new Array<number>(rank);
  let acc = 1;
  for (let i = rank - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= dims[i];
  }
  const run = sizes[rank - 1];
  const idx = new Array<number>(rank - 1).fill(0);
  let o = 0;
  const total = out.length;
  while (o < total) {
    let src = begins[rank - 1];
    for (let a = 0; a < rank - 1; a++) src += (begins[a] + idx[a]) * strides[a];
    if (run < SHORT_RUN) {
      for (let k = 0; k < run; k++) out[o + k] = x[src + k];
    } else {
      out.set(x.subarray(src, src + run), o);
    }
    o += run;
    for (let a = rank - 2; a >= 0; a--) {
      if (++idx[a] < sizes[a]) break;
      idx[a] = 0;
    }
  }
}

/** Kernel config: replaces the stock Slice (numeric dtypes; strings go to the stock kernel). */
export const sliceConfig = wasmKernel<keyof tf.SliceInputs, tf.SliceAttrs>(
  tf.Slice,
  ['x'],
  ({ x }, attrs, backend) => {
    if (x.dtype === 'string' || x.dtype === 'complex64') {
      return runStock(backend, tf.Slice, { x }, attrs as unknown as tf.NamedAttrMap);
    }
    const [begin, size] = tf.slice_util.parseSliceParams(x, attrs.begin, attrs.size);
    const out = backend.makeOutput(size, x.dtype);
    if (tf.util.sizeFromShape(size) === 0) return out;
    // Views are taken after makeOutput: allocating may grow (and replace) the wasm heap buffer.
    const xv = backend.typedArrayFromHeap(x) as Typed;
    const ov = backend.typedArrayFromHeap(out) as Typed;
    if (x.shape.length === 0) {
      ov[0] = xv[0];
      return out;
    }
    const { dims, begins, sizes } = mergeAxes(x.shape, begin, size);
    copySlice(xv, ov, dims, begins, sizes);
    return out;
  },
);
