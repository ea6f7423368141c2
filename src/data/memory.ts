/**
 * Fixed-shape data sets held in memory (MNIST, CIFAR, synthetic), and index views over any data set.
 * Reading returns views into the one pixel buffer, so a 128-image CIFAR batch costs no copying.
 */
import { checkIndices, type ImageDataset, type ImageShape, imageBytes, type RawImage } from './api.ts';

/** Images of one shape stored back to back (HWC uint8) in a single buffer. */
export class InMemoryDataset implements ImageDataset {
  readonly fixedShape = true;
  readonly size: number;
  /** Bytes per image; image i occupies `pixels[i*stride, (i+1)*stride)`. */
  private readonly stride: number;

  constructor(
    readonly name: string,
    readonly numClasses: number,
    readonly imageShape: ImageShape,
    /** All images, `size * H * W * C` bytes. */
    readonly pixels: Uint8Array,
    readonly labels: Int32Array,
    readonly classNames?: readonly string[],
  ) {
    this.stride = imageBytes(imageShape);
    this.size = labels.length;
    if (pixels.length !== this.size * this.stride) {
      throw new RangeError(
        `${name}: ${pixels.length} pixel bytes do not hold ${this.size} images of ${imageShape.join('x')}`,
      );
    }
  }

  /** The pixels of image `index` (a view, no copy). */
  image(index: number): Uint8Array {
    return this.pixels.subarray(index * this.stride, (index + 1) * this.stride);
  }

  async readImages(indices: ArrayLike<number>): Promise<RawImage[]> {
    checkIndices(this.name, this.size, indices);
    const out: RawImage[] = new Array(indices.length);
    for (let i = 0; i < indices.length; i++)
      out[i] = { data: this.image(indices[i]), shape: this.imageShape };
    return out;
  }
}

/** A view of `base` holding only the images at `indices` (in that order); nothing is copied. */
class SubsetDataset implements ImageDataset {
  readonly labels: Int32Array;
  readonly size: number;

  constructor(
    private readonly base: ImageDataset,
    /** Index into `base` of each element of the view. */
    private readonly map: Int32Array,
    readonly name: string,
  ) {
    this.size = map.length;
    this.labels = new Int32Array(map.length);
    for (let i = 0; i < map.length; i++) this.labels[i] = base.labels[map[i]];
  }

  get numClasses(): number {
    return this.base.numClasses;
  }
  get imageShape(): ImageShape {
    return this.base.imageShape;
  }
  get fixedShape(): boolean {
    return this.base.fixedShape;
  }
  get classNames(): readonly string[] | undefined {
    return this.base.classNames;
  }

  readImages(indices: ArrayLike<number>): Promise<RawImage[]> {
    checkIndices(this.name, this.size, indices);
    const mapped = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) mapped[i] = this.map[indices[i]];
    return this.base.readImages(mapped);
  }
}

/**
 * A view of `ds` with only the images at `indices` (each in [0, ds.size), in the given order).
 * Labels are copied; pixels are read through `ds`.
 */
export function subset(ds: ImageDataset, indices: ArrayLike<number>, name = ds.name): ImageDataset {
  checkIndices(ds.name, ds.size, indices);
  return new SubsetDataset(ds, Int32Array.from(indices), name);
}
