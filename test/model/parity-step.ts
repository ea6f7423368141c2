/**
 * The inputs of the first-step parity check (test/model/parity-step.test.ts), shared with the
 * script that makes its reference numbers (bench/parity/step-fixture.ts → bench/parity/step_ref.py):
 * a depth-8, width-2 BBN / single ResNet-cifar on 8x8x1 images with 4 classes, its initial
 * parameters from this project's `Rng`, and two batches of 8 standard-normal images. Depth 8 is the
 * smallest network and the one where the official layout has its corner case (layer3 of the BBN
 * trunk still holds one block, as `[2] + [1] * -1 == [2]`), so the check covers it. The fixture
 * records a fingerprint of these inputs, so a change in the initialisation or the RNG shows as a
 * stale fixture, not as a parity failure.
 */
import { Rng } from '../../src/core/rng.ts';
import type { ModelSpec } from '../../src/model/api.ts';
import { randomBatch } from './fixtures.ts';

/** The model of the check (BBN variant; the single variant shares everything else). */
export const PARITY_SPEC: ModelSpec & { readonly variant: 'bbn' } = {
  variant: 'bbn',
  backbone: 'resnet_cifar',
  depth: 8,
  baseWidth: 2,
  numClasses: 4,
  inputShape: [8, 8, 1],
  bnGammaInit: 'ones',
};

/** Batch size of the check. */
export const PARITY_BATCH = 8;

/** SGD settings of the check (the shipped MNIST-LT config's). */
export const PARITY_SGD = { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 2e-4 } as const;

/** α values of the BBN cases. */
export const PARITY_ALPHAS = [1, 0.5, 0] as const;

/** The initial-parameter generator of a variant. */
export function parityInitRng(variant: 'bbn' | 'single'): Rng {
  return Rng.fromSeed(`parity-step-${variant}`).split('init');
}

/** The uniform and reversed batches (the single variant trains on the uniform one). */
export function parityBatches() {
  return {
    u: randomBatch(PARITY_SPEC, PARITY_BATCH, 'parity-step-uniform'),
    r: randomBatch(PARITY_SPEC, PARITY_BATCH, 'parity-step-reversed'),
  };
}

/** Σx and Σx² in float64 of some arrays: the inputs' fingerprint. */
export function fingerprint(...arrays: ArrayLike<number>[]): [number, number] {
  let s = 0;
  let q = 0;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      s += a[i];
      q += a[i] * a[i];
    }
  }
  return [s, q];
}
