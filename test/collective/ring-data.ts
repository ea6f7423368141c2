/**
 * Test data and reference sums for the ring allreduce tests (shared by the in-process tests, the
 * child processes and their parent).
 */
import { f32BitsToBf16 } from '../../src/collective/index.ts';
import { Rng } from '../../src/core/rng.ts';

/** Rank `rank`'s input: seeded normals spread over many exponents (so rounding order matters). */
export function rankData(seed: string, rank: number, n: number): Float32Array {
  const rng = Rng.fromSeed(seed).split(rank);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal() * 2 ** rng.int(12);
  return out;
}

/** Segment of element i when n elements are cut into W segments floor(s*n/W) (schedule.ts). */
function segmentOf(i: number, n: number, W: number): number {
  let s = Math.floor((i * W) / n);
  while (s > 0 && Math.floor((s * n) / W) > i) s--;
  while (s + 1 < W && Math.floor(((s + 1) * n) / W) <= i) s++;
  return s;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bf16(x: number): number {
  f32[0] = x;
  u32[0] = f32BitsToBf16(u32[0]) << 16;
  return f32[0];
}

/**
 * The exact float32 result the ring must produce: element i of segment s summed in rank order
 * s, s+1, ..., s+W-1. With `wireBf16`, every hop sends its partial sum rounded to bfloat16 and
 * the owner rounds the final sum, as the ring does.
 */
export function ringOrderSum(inputs: readonly Float32Array[], wireBf16 = false): Float32Array {
  const W = inputs.length;
  const n = inputs[0].length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = segmentOf(i, n, W);
    let acc = inputs[s][i];
    for (let k = 1; k < W; k++) {
      const x = inputs[(s + k) % W][i];
      acc = Math.fround((wireBf16 ? bf16(acc) : acc) + x);
    }
    out[i] = wireBf16 && W > 1 ? bf16(acc) : acc;
  }
  return out;
}

/** Float64 sums and the sum of magnitudes (for rounding-error bounds). */
export function float64Sum(inputs: readonly Float32Array[]): { sum: Float64Array; abs: Float64Array } {
  const n = inputs[0].length;
  const sum = new Float64Array(n);
  const abs = new Float64Array(n);
  for (const x of inputs) {
    for (let i = 0; i < n; i++) {
      sum[i] += x[i];
      abs[i] += Math.abs(x[i]);
    }
  }
  return { sum, abs };
}

/**
 * Index of the first element whose value differs (NaN equals NaN, -0 differs from 0), or -1; the
 * shorter length when the lengths differ.
 */
export function firstValueDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

/** Index of the first element whose bits differ, or -1 (NaN-safe, -0 vs 0 distinguished). */
export function firstBitDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}
