/**
 * Contracts of the data layer: what a data set looks like to the trainer, and the one error type
 * every reader raises. Implementations live beside this file (`memory.ts`, `cifar.ts`, `inat.ts`, …).
 */
import type { AugmentSpec } from './augment.ts';

/** Image shape, height × width × channels (HWC, the layout tfjs uses). */
export type ImageShape = readonly [height: number, width: number, channels: number];

/** One decoded image: HWC uint8 pixels and their shape. */
export interface RawImage {
  /** `shape[0] * shape[1] * shape[2]` bytes, row-major HWC. May be a view into a shared buffer: do not mutate. */
  readonly data: Uint8Array;
  readonly shape: ImageShape;
}

/** A labelled image collection, read in batches by index. */
export interface ImageDataset {
  /** Human-readable name, e.g. `cifar10-train` or `mnist-test`. */
  readonly name: string;
  readonly numClasses: number;
  /** Number of images; valid indices are 0..size-1. */
  readonly size: number;
  /**
   * Shape of every image `readImages` returns when `fixedShape` is true. When false (iNat files,
   * decoded at full size), the nominal network input shape after the 224-px transforms.
   */
  readonly imageShape: ImageShape;
  /** True when every image has exactly `imageShape`. */
  readonly fixedShape: boolean;
  /** Class id of each image (0..numClasses-1). Do not mutate. */
  readonly labels: Int32Array;
  /** Class names by id, when the data set ships them. */
  readonly classNames?: readonly string[];
  /** Decodes the images at `indices`, in order. Rejects with `DataError` naming the file and record. */
  readImages(indices: ArrayLike<number>): Promise<RawImage[]>;
}

/** Where a bad record was found, for messages and for callers that want to react per file. */
export interface DataErrorDetail {
  /** The file at fault (data file, annotation JSON or image). */
  readonly file?: string;
  /** Record / annotation index inside that file, 0-based. */
  readonly record?: number;
}

/**
 * A data set that cannot be read: missing or truncated file, bad label, corrupt image, wrong
 * JSON format. The message names the file (and record) and says what to do; the CLI prints it
 * as one line (`bbn: <message>`, exit status 2).
 */
export class DataError extends Error {
  override name = 'DataError';
  readonly file?: string;
  readonly record?: number;
  constructor(message: string, detail: DataErrorDetail = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.file = detail.file;
    this.record = detail.record;
  }
}

/** The train and test sets of a run, after the long-tail profile was applied to the training set. */
export interface LoadedData {
  /** Long-tailed training set (iNat: the training JSON as is). */
  readonly train: ImageDataset;
  /** Balanced, untouched test set (CIFAR test split, MNIST held-out digits, iNat validation JSON). */
  readonly test: ImageDataset;
  /** Training images per class, by class id. */
  readonly trainCounts: number[];
  /** One line describing how the training set was made, e.g. `exp profile, imbalance ratio 100, nMax 5000, …`. */
  readonly profile: string;
  /** Train/test transforms and normalisation for this data set (`augmentSpecFor(cfg)`). */
  readonly augment: AugmentSpec;
}

/** Throws a `RangeError` unless every index is an integer in [0, size). */
export function checkIndices(name: string, size: number, indices: ArrayLike<number>): void {
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i];
    if (!Number.isInteger(k) || k < 0 || k >= size) {
      throw new RangeError(`${name}: index ${k} (position ${i}) is outside 0..${size - 1}`);
    }
  }
}

/** Number of bytes of one image of `shape`. */
export function imageBytes(shape: ImageShape): number {
  return shape[0] * shape[1] * shape[2];
}
