import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resampleCoeffs, resizeBilinear } from '../../src/data/resize.ts';

const close = (got: ArrayLike<number>, want: number[], tol = 1e-4) => {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++)
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `[${i}] ${got[i]} vs ${want[i]}`);
};

describe('bilinear resize (PIL semantics)', () => {
  it('upscales 2x2 to 4x4 with half-pixel centres and clamped edges (hand-computed)', () => {
    // src = [[0, 100], [60, 160]]; sample points (x+0.5)/2-0.5 = -0.25, 0.25, 0.75, 1.25 -> clamp -> 0, .25, .75, 1.
    const src = Uint8Array.from([0, 100, 60, 160]);
    const out = resizeBilinear(src, [2, 2, 1], 4, 4);
    const row = (a: number, b: number) => [a, a + 0.25 * (b - a), a + 0.75 * (b - a), b];
    const r0 = row(0, 100); // [0, 25, 75, 100]
    const r3 = row(60, 160); // [60, 85, 135, 160]
    const mix = (t: number) => r0.map((v, i) => v + t * (r3[i] - v));
    close(out, [...mix(0), ...mix(0.25), ...mix(0.75), ...mix(1)]);
    close(out.subarray(4, 8), [15, 40, 90, 115]);
  });

  it('downscales 4 to 2 with the widened (antialiasing) triangle, weights 3/7, 3/7, 1/7', () => {
    // Output 0: centre 1.0, support 2 -> inputs 0,1,2 at distances .5,.5,1.5 (/2) -> weights .75,.75,.25.
    const src = Uint8Array.from([0, 10, 20, 30]);
    const out = resizeBilinear(src, [1, 4, 1], 1, 2);
    close(out, [50 / 7, 160 / 7]);
    const k = resampleCoeffs(0, 4, 2);
    close(Array.from(k.weights.subarray(0, 3)), [3 / 7, 3 / 7, 1 / 7], 1e-12);
    assert.deepEqual([k.start[1], k.count[1]], [1, 3]);
  });

  it('is the identity at scale 1 and keeps channels apart', () => {
    const src = Uint8Array.from({ length: 5 * 4 * 3 }, (_, i) => (i * 37) % 256);
    close(resizeBilinear(src, [5, 4, 3], 5, 4), Array.from(src), 1e-9);
  });

  it('resizes a box of the image like cropping first', () => {
    const src = Uint8Array.from({ length: 9 * 11 * 2 }, (_, i) => (i * 13) % 251);
    const crop = new Uint8Array(4 * 5 * 2);
    for (let y = 0; y < 4; y++)
      for (let x = 0; x < 5; x++)
        for (let c = 0; c < 2; c++) {
          crop[(y * 5 + x) * 2 + c] = src[((y + 3) * 11 + (x + 2)) * 2 + c];
        }
    const a = resizeBilinear(src, [9, 11, 2], 7, 3, { box: { top: 3, left: 2, height: 4, width: 5 } });
    close(a, Array.from(resizeBilinear(crop, [4, 5, 2], 7, 3)), 1e-4);
  });

  it('computes only a window of the output, equal to cropping the full output', () => {
    const src = Uint8Array.from({ length: 30 * 20 * 3 }, (_, i) => (i * 31) % 256);
    const full = resizeBilinear(src, [30, 20, 3], 17, 13);
    const win = resizeBilinear(src, [30, 20, 3], 17, 13, {
      window: { top: 4, left: 3, height: 8, width: 6 },
    });
    const want: number[] = [];
    for (let y = 4; y < 12; y++)
      for (let x = 3; x < 9; x++) for (let c = 0; c < 3; c++) want.push(full[(y * 13 + x) * 3 + c]);
    close(win, want, 1e-6);
    assert.throws(() =>
      resizeBilinear(src, [30, 20, 3], 17, 13, { window: { top: 10, left: 0, height: 8, width: 1 } }),
    );
  });

  it('keeps a constant image constant when shrinking by a non-integer factor', () => {
    const src = new Uint8Array(37 * 23 * 3).fill(123);
    const out = resizeBilinear(src, [37, 23, 3], 10, 7);
    for (const v of out) assert.ok(Math.abs(v - 123) < 1e-4);
  });
});
