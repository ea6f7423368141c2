/** Tiny specs and random batches for the model tests (the cpu backend is slow: keep them small). */
import { Rng } from '../../src/core/rng.ts';
import type { ModelSpec } from '../../src/model/api.ts';

/** A BBN ResNet-cifar of depth 14 (2 blocks per stage), width 2, on 8x8x3 images, 3 classes. */
export const TINY_BBN: ModelSpec & { readonly variant: 'bbn' } = {
  variant: 'bbn',
  backbone: 'resnet_cifar',
  depth: 14,
  baseWidth: 2,
  numClasses: 3,
  inputShape: [8, 8, 3],
  bnGammaInit: 'ones',
};

/** The single-branch counterpart of `TINY_BBN`. */
export const TINY_SINGLE: ModelSpec & { readonly variant: 'single' } = { ...TINY_BBN, variant: 'single' };

/** `n` standard-normal NHWC images of `spec` and labels uniform over the classes. */
export function randomBatch(
  spec: ModelSpec,
  n: number,
  seed: number | string,
): { x: Float32Array; y: Int32Array } {
  const r = Rng.fromSeed(seed);
  const [h, w, c] = spec.inputShape;
  const x = new Float32Array(n * h * w * c);
  for (let i = 0; i < x.length; i++) x[i] = r.normal();
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = r.int(spec.numClasses);
  return { x, y };
}

/** Max |a − b| over two equal-length arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Max |x|. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
