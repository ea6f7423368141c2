/**
 * Tile for wasm by block copies. The stock 4.22 kernel computes every output element's source
 * index in a scalar loop (about 0.1-0.5 s for one BatchNorm-gradient tile at batch 128). Tiling
 * only ever repeats contiguous blocks, so this kernel copies each input row once and then doubles
 * the filled region with `copyWithin` along every axis, innermost first: O(output) bytes moved
 * with O(rank · log reps) calls for the broadcast-like tiles the gradients produce.
 */
import * as tf from '@tensorflow/tfjs';
import { runStock, WasmKernelError, wasmKernel } from './kernel_utils.ts';

type Typed = Float32Array | Int32Array | Uint8Array;

/** Repeats `out[start, start+block)` so that `out[start, start+block·reps)` holds `reps` copies. */
function repeatBlock(out: Typed, start: number, block: number, reps: number): void {
  let filled = block;
  const total = block * reps;
  while (filled < total) {
    const n = Math.min(filled, total - filled);
    out.copyWithin(start + filled, start, start + n);
    filled += n;
  }
}

/**
 * Writes the tile of `x` (shape `xs`) into `out` (shape `xs[d]·reps[d]`) for axes `d..rank-1`,
 * at the given offsets. `outStrides[d]` is the output element stride of axis d.
 */
function tileAxis(
  x: Typed,
  out: Typed,
  xs: readonly number[],
  reps: readonly number[],
  xStrides: readonly number[],
  outStrides: readonly number[],
  d: number,
  xOff: number,
  outOff: number,
): void {
  const last = d === xs.length - 1;
  if (last) {
    out.set(x.subarray(xOff, xOff + xs[d]), outOff);
  } else {
    for (let i = 0; i < xs[d]; i++) {
      tileAxis(
        x,
        out,
        xs,
        reps,
        xStrides,
        outStrides,
        d + 1,
        xOff + i * xStrides[d],
        outOff + i * outStrides[d],
      );
    }
  }
  if (reps[d] > 1) repeatBlock(out, outOff, xs[d] * outStrides[d], reps[d]);
}

/** Row-major element strides of `shape`. */
function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Kernel config: replaces the stock Tile (numeric and bool tensors of any rank; strings go to stock). */
export const tileConfig = wasmKernel<keyof tf.TileInputs, tf.TileAttrs>(
  tf.Tile,
  ['x'],
  ({ x }, { reps }, backend) => {
    if (reps.length !== x.shape.length) {
      throw new WasmKernelError(
        `Tile: reps length (${reps.length}) must equal the rank of x (${x.shape.length})`,
      );
    }
    if (x.dtype === 'string' || x.dtype === 'complex64') return runStock(backend, tf.Tile, { x }, { reps });
    const outShape = x.shape.map((s, i) => s * reps[i]);
    const out = backend.makeOutput(outShape, x.dtype);
    if (tf.util.sizeFromShape(outShape) === 0) return out;
    // Views are taken after makeOutput: allocating may grow (and replace) the wasm heap buffer.
    const xv = backend.typedArrayFromHeap(x) as Typed;
    const ov = backend.typedArrayFromHeap(out) as Typed;
    if (x.shape.length === 0) {
      ov[0] = xv[0];
      return out;
    }
    tileAxis(xv, ov, x.shape, reps, strides(x.shape), strides(outShape), 0, 0, 0);
    return out;
  },
);
