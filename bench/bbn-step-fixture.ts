/**
 * What the step benchmarks share: the command-line option reader, and the benchmarked network
 * (BBN-ResNet-32, width 16, 10 classes at 32×32×3, the reference step) with a seeded
 * random batch of B uniform and B reversed images.
 */
import { Rng } from '../src/core/rng.ts';
import type { BbnModel } from '../src/model/api.ts';
import { createModel } from '../src/model/factory.ts';

/** The value after `--name` on the command line, or `def`. */
export function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}

/** BBN-ResNet-32 (seed 0) on the current backend. */
export function bbnResNet32(): BbnModel {
  return createModel(
    {
      variant: 'bbn',
      backbone: 'resnet_cifar',
      depth: 32,
      baseWidth: 16,
      numClasses: 10,
      inputShape: [32, 32, 3],
      bnGammaInit: 'ones',
    },
    Rng.fromSeed(0),
  );
}

/** A BBN batch of `batch` + `batch` normal-noise images with uniform labels, drawn from `rng`. */
export function randomBbnBatch(batch: number, rng: Rng) {
  const images = () => Float32Array.from({ length: batch * 32 * 32 * 3 }, () => rng.normal());
  const labels = () => Int32Array.from({ length: batch }, () => rng.int(10));
  return { xu: images(), yu: labels(), xr: images(), yr: labels() };
}
