/**
 * Bilinear resampling of HWC uint8 images the way PIL's `Image.resize(…, BILINEAR)` does it (which is
 * what torchvision's Resize/RandomResizedCrop ran on in the BBN code): a separable triangle filter on
 * pixel centres (`(x + 0.5) · scale`), widened by the scale when shrinking so that downscaling
 * averages (antialiasing) instead of skipping pixels, and renormalised at the borders.
 * Upscaling is plain half-pixel bilinear with edge clamping. Results stay in float (0..255),
 * unrounded: the caller normalises them at once.
 */
import type { ImageShape } from './api.ts';

/** A rectangle in pixel rows/columns: `[top, top + height) × [left, left + width)`. */
export interface Box {
  readonly top: number;
  readonly left: number;
  readonly height: number;
  readonly width: number;
}

/** Filter taps of one axis: output i reads `count[i]` inputs from `start[i]` with `weights[i*ksize + k]`. */
export interface ResampleCoeffs {
  readonly start: Int32Array;
  readonly count: Int32Array;
  readonly weights: Float64Array;
  readonly ksize: number;
}

/** Triangle (bilinear) kernel, support 1. */
function triangle(x: number): number {
  const a = x < 0 ? -x : x;
  return a < 1 ? 1 - a : 0;
}

/**
 * Taps that map the integer input range `[in0, in1)` of an axis onto `outSize` outputs (PIL's
 * `precompute_coeffs` with the bilinear filter, run on the range cut out first, as torchvision's
 * crop-then-resize does: taps never reach outside the range).
 */
export function resampleCoeffs(in0: number, in1: number, outSize: number): ResampleCoeffs {
  const inSize = in1 - in0;
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // bilinear support 1, widened when shrinking
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * ksize);
  const inv = 1 / filterScale;
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    for (let k = 0; k < hi - lo; k++) {
      const w = triangle((k + lo - center + 0.5) * inv);
      weights[i * ksize + k] = w;
      total += w;
    }
    if (total > 0) for (let k = 0; k < hi - lo; k++) weights[i * ksize + k] /= total;
    start[i] = in0 + lo;
    count[i] = hi - lo;
  }
  return { start, count, weights, ksize };
}

/**
 * Resizes the `box` of `src` (default: the whole image; pixels outside it are never read) to `outH × outW` and returns the pixels of
 * `window` of that output (default: all of it), HWC float on the 0..255 scale. Computing only the
 * window makes resize-then-center-crop cost only the crop.
 */
export function resizeBilinear(
  src: Uint8Array,
  shape: ImageShape,
  outH: number,
  outW: number,
  opts: { box?: Box; window?: Box } = {},
): Float32Array {
  const [h, w, c] = shape;
  const box = opts.box ?? { top: 0, left: 0, height: h, width: w };
  const win = opts.window ?? { top: 0, left: 0, height: outH, width: outW };
  if (win.top < 0 || win.left < 0 || win.top + win.height > outH || win.left + win.width > outW) {
    throw new RangeError(
      `resizeBilinear: window ${JSON.stringify(win)} is outside the ${outH}x${outW} output`,
    );
  }
  if (box.top < 0 || box.left < 0 || box.top + box.height > h || box.left + box.width > w) {
    throw new RangeError(`resizeBilinear: box ${JSON.stringify(box)} is outside the ${h}x${w} image`);
  }
  const ys = resampleCoeffs(box.top, box.top + box.height, outH);
  const xs = resampleCoeffs(box.left, box.left + box.width, outW);
  // Input rows the window's outputs read.
  let row0 = h;
  let row1 = 0;
  for (let y = win.top; y < win.top + win.height; y++) {
    row0 = Math.min(row0, ys.start[y]);
    row1 = Math.max(row1, ys.start[y] + ys.count[y]);
  }
  const rowLen = win.width * c;
  const tmp = new Float64Array(Math.max(row1 - row0, 0) * rowLen);
  horizontalPass(src, w * c, c, row0, row1, xs, win.left, win.width, tmp);
  const out = new Float32Array(win.height * rowLen);
  verticalPass(tmp, rowLen, row0, ys, win.top, win.height, out);
  return out;
}

/** Filters rows `[row0, row1)` of `src` along x into `tmp` (one row of `outCount` pixels per input row). */
function horizontalPass(
  src: Uint8Array,
  srcRowLen: number,
  c: number,
  row0: number,
  row1: number,
  xs: ResampleCoeffs,
  outFirst: number,
  outCount: number,
  tmp: Float64Array,
): void {
  const { start, count, weights, ksize } = xs;
  let t = 0;
  for (let r = row0; r < row1; r++) {
    const srcRow = r * srcRowLen;
    for (let x = 0; x < outCount; x++) {
      const ox = outFirst + x;
      const n = count[ox];
      const wo = ox * ksize;
      let p = srcRow + start[ox] * c;
      if (c === 3) {
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        for (let k = 0; k < n; k++, p += 3) {
          const wk = weights[wo + k];
          s0 += wk * src[p];
          s1 += wk * src[p + 1];
          s2 += wk * src[p + 2];
        }
        tmp[t++] = s0;
        tmp[t++] = s1;
        tmp[t++] = s2;
      } else {
        for (let ch = 0; ch < c; ch++) {
          let s = 0;
          for (let k = 0; k < n; k++) s += weights[wo + k] * src[p + k * c + ch];
          tmp[t++] = s;
        }
      }
    }
  }
}

/** Filters the rows of `tmp` (first row = input row `row0`) along y into `out`. */
function verticalPass(
  tmp: Float64Array,
  rowLen: number,
  row0: number,
  ys: ResampleCoeffs,
  outFirst: number,
  outCount: number,
  out: Float32Array,
): void {
  const { start, count, weights, ksize } = ys;
  const acc = new Float64Array(rowLen);
  for (let y = 0; y < outCount; y++) {
    const oy = outFirst + y;
    const n = count[oy];
    const wo = oy * ksize;
    acc.fill(0);
    for (let k = 0; k < n; k++) {
      const wk = weights[wo + k];
      const off = (start[oy] - row0 + k) * rowLen;
      for (let j = 0; j < rowLen; j++) acc[j] += wk * tmp[off + j];
    }
    out.set(acc, y * rowLen);
  }
}
