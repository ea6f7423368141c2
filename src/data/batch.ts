/**
 * Batch assembly: reads images by index, applies the train or test transform of one row each, and
 * packs them into one NHWC float buffer ready for a tensor.
 */
import type { Rng } from '../core/rng.ts';
import { DataError, type ImageDataset, type ImageShape, imageBytes } from './api.ts';
import { type AugmentSpec, outputShape, transformImage } from './augment.ts';

/** How to build a batch. */
export interface BatchOptions {
  /** Training batch: random transform per row (needs `rngs`); else the deterministic test transform. */
  readonly train: boolean;
  /**
   * One generator per row when `train`. The caller derives row i's from (seed, epoch, global
   * sample slot), so a row's augmentation does not depend on the world size or batch split.
   */
  readonly rngs?: readonly Rng[];
  readonly spec: AugmentSpec;
}

/** A packed batch: `x` is NHWC normalised float, `y` the labels. */
export interface Batch {
  readonly x: Float32Array;
  readonly y: Int32Array;
  readonly shape: [n: number, h: number, w: number, c: number];
}

/** Reads and transforms the images at `indices` of `ds` into one batch, rows in the order given. */
export async function assembleBatch(
  ds: ImageDataset,
  indices: ArrayLike<number>,
  opts: BatchOptions,
): Promise<Batch> {
  const n = indices.length;
  if (opts.train && (!opts.rngs || opts.rngs.length !== n)) {
    throw new RangeError(
      `assembleBatch(${ds.name}): a training batch of ${n} rows needs ${n} Rngs, got ${opts.rngs?.length ?? 0}`,
    );
  }
  const images = await ds.readImages(indices);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = ds.labels[indices[i]];
  const first: ImageShape = n > 0 ? outputShape(opts.spec, opts.train, images[0].shape) : ds.imageShape;
  const rowLen = imageBytes(first);
  const x = new Float32Array(n * rowLen);
  for (let i = 0; i < n; i++) {
    const shape = outputShape(opts.spec, opts.train, images[i].shape);
    if (shape[0] !== first[0] || shape[1] !== first[1] || shape[2] !== first[2]) {
      throw new DataError(
        `${ds.name} image #${indices[i]} becomes ${shape.join('x')} but row 0 became ${first.join('x')}; ` +
          'images of different sizes need a resizing augmentation (resized_crop_flip)',
        { record: indices[i] },
      );
    }
    transformImage(images[i], opts.spec, opts.train, opts.rngs?.[i], x, i * rowLen);
  }
  return { x, y, shape: [n, first[0], first[1], first[2]] };
}
