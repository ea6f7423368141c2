/**
 * Generated images for tests and demos: each class has a fixed random block pattern (a 4x4 grid of
 * colours, scaled up to the image size), and each image is its class pattern plus seeded noise.
 * Learnable in a few epochs by a small ResNet, deterministic, and needs no files.
 */
import { Rng } from '../core/rng.ts';
import type { ImageShape } from './api.ts';
import { InMemoryDataset } from './memory.ts';

/** Shape of a synthetic data set. */
export interface SyntheticOptions {
  readonly numClasses: number;
  /** Training images per class (before the long tail). */
  readonly perClass: number;
  /** Test images per class. */
  readonly testPerClass: number;
  /** Image side in pixels (default 32). */
  readonly imageSize?: number;
  /** Channels (default 3). */
  readonly channels?: number;
}

/** Cells per side of a class pattern. */
const GRID = 4;
/** Noise is uniform in [-NOISE, NOISE) grey levels. */
const NOISE = 64;

/** The class patterns; they depend only on the class id and shape, never on a run's seeds. */
function patterns(numClasses: number, shape: ImageShape): Uint8Array[] {
  const [h, w, c] = shape;
  const root = Rng.fromSeed('bbn-synthetic-patterns');
  return Array.from({ length: numClasses }, (_, k) => {
    const rng = root.split(k);
    const cells = Array.from({ length: GRID * GRID * c }, () => rng.int(256));
    const img = new Uint8Array(h * w * c);
    for (let y = 0; y < h; y++) {
      const gy = Math.floor((y * GRID) / h);
      for (let x = 0; x < w; x++) {
        const gx = Math.floor((x * GRID) / w);
        for (let ch = 0; ch < c; ch++) img[(y * w + x) * c + ch] = cells[(gy * GRID + gx) * c + ch];
      }
    }
    return img;
  });
}

/** `perClass` noisy copies of each class pattern, grouped by class; the noise stream is `rng`. */
function generate(
  name: string,
  numClasses: number,
  perClass: number,
  shape: ImageShape,
  protos: readonly Uint8Array[],
  rng: Rng,
): InMemoryDataset {
  const bytes = shape[0] * shape[1] * shape[2];
  const pixels = new Uint8Array(numClasses * perClass * bytes);
  const labels = new Int32Array(numClasses * perClass);
  let word = 0;
  let left = 0;
  let n = 0;
  for (let k = 0; k < numClasses; k++) {
    const proto = protos[k];
    for (let i = 0; i < perClass; i++, n++) {
      labels[n] = k;
      const off = n * bytes;
      for (let p = 0; p < bytes; p++) {
        // Four 7-bit noise values per 32-bit draw keeps generation cheap.
        if (left === 0) {
          word = rng.nextUint32();
          left = 4;
        }
        const noise = ((word & 0xff) >>> 1) - NOISE;
        word >>>= 8;
        left--;
        const v = proto[p] + noise;
        pixels[off + p] = v < 0 ? 0 : Math.min(v, 255);
      }
    }
  }
  return new InMemoryDataset(
    name,
    numClasses,
    shape,
    pixels,
    labels,
    Array.from({ length: numClasses }, (_, k) => `class${k}`),
  );
}

/** Balanced synthetic train and test sets (the long tail is applied by the caller). */
export function makeSynthetic(opts: SyntheticOptions): { train: InMemoryDataset; test: InMemoryDataset } {
  const side = opts.imageSize ?? 32;
  const shape: ImageShape = [side, side, opts.channels ?? 3];
  const protos = patterns(opts.numClasses, shape);
  const root = Rng.fromSeed('bbn-synthetic-noise');
  return {
    train: generate('synthetic-train', opts.numClasses, opts.perClass, shape, protos, root.split('train')),
    test: generate('synthetic-test', opts.numClasses, opts.testPerClass, shape, protos, root.split('test')),
  };
}
