/**
 * Train-time augmentation and normalisation on HWC uint8 images, torchvision semantics
 * (BBN-SPEC §5.1, §5.2), in plain loops so that results are deterministic to the bit:
 *
 * | dataset.kind | `augment: auto` (train)                         | test                          | mean / std |
 * |--------------|-------------------------------------------------|-------------------------------|------------|
 * | cifar10/100  | RandomCrop(32, pad 4, zeros) + flip p=0.5       | normalise only                | CIFAR      |
 * | mnist        | RandomCrop(28, pad 2, zeros), **no flip** (digits are not mirror-symmetric) | normalise only | 0.1307 / 0.3081 |
 * | inat         | RandomResizedCrop(224, (0.08,1), (3/4,4/3)) + flip | resize short side 256, center crop 224 | ImageNet |
 * | synthetic    | none (the class patterns are not flip- or shift-invariant) | normalise only     | 0.5 / 0.25 |
 *
 * An explicit `crop_flip` always flips (padding 2 for MNIST, 4 for CIFAR, side/8 for synthetic);
 * `resized_crop_flip` on a fixed-size set crops back to its own size; `none` trains with the test
 * transform. Randomness comes only from the `Rng` the caller passes for each image, drawn in
 * torchvision's order (crop, then flip).
 */
import type { RunConfig } from '../core/config.ts';
import type { Rng } from '../core/rng.ts';
import { DataError, type ImageShape, type RawImage } from './api.ts';
import { type Box, resizeBilinear } from './resize.ts';

/** Random transform of a training image (before normalisation). */
export type TrainTransform =
  | { readonly kind: 'none' }
  | { readonly kind: 'crop_flip'; readonly padding: number; readonly flip: boolean }
  | {
      readonly kind: 'resized_crop_flip';
      readonly size: number;
      readonly scale: readonly [number, number];
      readonly ratio: readonly [number, number];
      readonly flip: boolean;
    };

/** Deterministic transform of a test image (before normalisation). */
export type TestTransform =
  | { readonly kind: 'identity' }
  | { readonly kind: 'resize_center_crop'; readonly resize: number; readonly size: number };

/** Everything needed to turn a decoded image into a network input. */
export interface AugmentSpec {
  readonly train: TrainTransform;
  readonly test: TestTransform;
  /** Per-channel mean and std of `ToTensor` values in [0, 1]. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** torchvision / BBN CIFAR statistics (imbalance_cifar.py). */
export const CIFAR_MEAN = [0.4914, 0.4822, 0.4465] as const;
export const CIFAR_STD = [0.2023, 0.1994, 0.201] as const;
/** ImageNet statistics (BBN iNat transforms). */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;
export const MNIST_MEAN = [0.1307] as const;
export const MNIST_STD = [0.3081] as const;

const RESIZED_CROP = { scale: [0.08, 1] as const, ratio: [3 / 4, 4 / 3] as const };

/** The augmentation of a dataset config (see the table at the top of this file). */
export function augmentSpecFor(ds: RunConfig['dataset']): AugmentSpec {
  const mode = ds.augment;
  if (ds.kind === 'inat') {
    if (mode === 'crop_flip') {
      throw new DataError(
        'dataset.augment crop_flip needs images of one size; iNat images vary, use auto or resized_crop_flip',
      );
    }
    return {
      train:
        mode === 'none'
          ? { kind: 'none' }
          : { kind: 'resized_crop_flip', size: 224, ...RESIZED_CROP, flip: true },
      test: { kind: 'resize_center_crop', resize: 256, size: 224 },
      mean: IMAGENET_MEAN,
      std: IMAGENET_STD,
    };
  }
  const side = ds.kind === 'mnist' ? 28 : ds.kind === 'synthetic' ? (ds.imageSize ?? 32) : 32;
  const channels = ds.kind === 'mnist' ? 1 : ds.kind === 'synthetic' ? (ds.channels ?? 3) : 3;
  const stats =
    ds.kind === 'mnist'
      ? { mean: MNIST_MEAN, std: MNIST_STD }
      : ds.kind === 'synthetic'
        ? { mean: new Array(channels).fill(0.5), std: new Array(channels).fill(0.25) }
        : { mean: CIFAR_MEAN, std: CIFAR_STD };
  const padding = ds.kind === 'mnist' ? 2 : ds.kind === 'synthetic' ? Math.max(1, Math.round(side / 8)) : 4;
  let train: TrainTransform;
  if (mode === 'auto') {
    train =
      ds.kind === 'synthetic' ? { kind: 'none' } : { kind: 'crop_flip', padding, flip: ds.kind !== 'mnist' };
  } else if (mode === 'crop_flip') {
    train = { kind: 'crop_flip', padding, flip: true };
  } else if (mode === 'resized_crop_flip') {
    train = { kind: 'resized_crop_flip', size: side, ...RESIZED_CROP, flip: true };
  } else {
    train = { kind: 'none' };
  }
  return { train, test: { kind: 'identity' }, ...stats };
}

/** Shape of the network input that `spec` makes from images of `input` shape. */
export function outputShape(spec: AugmentSpec, train: boolean, input: ImageShape): ImageShape {
  const t = train ? spec.train : { kind: 'none' as const };
  if (t.kind === 'resized_crop_flip') return [t.size, t.size, input[2]];
  if (spec.test.kind === 'resize_center_crop' && t.kind === 'none') {
    return [spec.test.size, spec.test.size, input[2]];
  }
  return input;
}

/** Python's `round` (half to even), which torchvision's crop arithmetic uses. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** RandomCrop(padding p) offsets in the padded image, each uniform in [0, 2p] (torch.randint order: top, left). */
export function randomCropOffsets(rng: Rng, padding: number): { top: number; left: number } {
  const top = rng.int(2 * padding + 1);
  const left = rng.int(2 * padding + 1);
  return { top, left };
}

/**
 * RandomResizedCrop.get_params: up to 10 tries of area fraction ~ U(scale) and log-aspect ~
 * U(log ratio); the first crop that fits wins, placed uniformly. Otherwise a center crop clamped
 * to the ratio range.
 */
export function resizedCropBox(
  rng: Rng,
  height: number,
  width: number,
  scale: readonly [number, number] = RESIZED_CROP.scale,
  ratio: readonly [number, number] = RESIZED_CROP.ratio,
): Box {
  const area = height * width;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(...ratio)) h = roundHalfEven(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) w = roundHalfEven(h * Math.max(...ratio));
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** Output size of Resize(size) on the shorter side (torchvision: the long side is truncated). */
export function shorterSideSize(height: number, width: number, size: number): [number, number] {
  if (width <= height) return [Math.trunc((size * height) / width), size];
  return [size, Math.trunc((size * width) / height)];
}

/** CenterCrop(size) box of an `height × width` image (torchvision rounds half to even). */
export function centerCropBox(height: number, width: number, size: number): Box {
  return {
    top: roundHalfEven((height - size) / 2),
    left: roundHalfEven((width - size) / 2),
    height: size,
    width: size,
  };
}

/** Per-channel table from a byte to its normalised value, `(v/255 − mean) / std`. */
const lutCache = new WeakMap<AugmentSpec, Float32Array[]>();
function lutOf(spec: AugmentSpec): Float32Array[] {
  let lut = lutCache.get(spec);
  if (!lut) {
    lut = spec.mean.map((m, c) => {
      const t = new Float32Array(256);
      for (let v = 0; v < 256; v++) t[v] = (v / 255 - m) / spec.std[c];
      return t;
    });
    lutCache.set(spec, lut);
  }
  return lut;
}

/** Writes HWC uint8 `src` (optionally shifted by a zero-padded crop and mirrored) normalised into `out`. */
function writeCropped(
  src: Uint8Array,
  shape: ImageShape,
  dy: number,
  dx: number,
  flip: boolean,
  lut: Float32Array[],
  out: Float32Array,
  offset: number,
): void {
  const [h, w, c] = shape;
  let o = offset;
  for (let y = 0; y < h; y++) {
    const sy = y + dy;
    const rowInside = sy >= 0 && sy < h;
    for (let x = 0; x < w; x++) {
      const sx = (flip ? w - 1 - x : x) + dx;
      const inside = rowInside && sx >= 0 && sx < w;
      const base = (sy * w + sx) * c;
      for (let ch = 0; ch < c; ch++) out[o++] = lut[ch][inside ? src[base + ch] : 0];
    }
  }
}

/** Writes float 0..255 HWC `pixels` normalised (optionally mirrored) into `out`. */
function writeFloat(
  pixels: Float32Array,
  shape: ImageShape,
  flip: boolean,
  spec: AugmentSpec,
  out: Float32Array,
  offset: number,
): void {
  const [h, w, c] = shape;
  const a = spec.std.map((s) => 1 / (255 * s));
  const b = spec.mean.map((m, i) => -m / spec.std[i]);
  let o = offset;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const base = (y * w + (flip ? w - 1 - x : x)) * c;
      for (let ch = 0; ch < c; ch++) out[o++] = pixels[base + ch] * a[ch] + b[ch];
    }
  }
}

/**
 * Transforms one image into `out` at `offset` (HWC float, `outputShape(spec, train, image.shape)`):
 * the random train transform drawn from `rng` when `train`, else the test transform; then
 * ToTensor + Normalize.
 */
export function transformImage(
  image: RawImage,
  spec: AugmentSpec,
  train: boolean,
  rng: Rng | undefined,
  out: Float32Array,
  offset: number,
): void {
  const [h, w, c] = image.shape;
  if (c !== spec.mean.length) {
    throw new DataError(
      `image has ${c} channel(s) but the normalisation of this data set expects ${spec.mean.length}`,
    );
  }
  const t = train ? spec.train : ({ kind: 'none' } as const);
  if (t.kind !== 'none' && !rng) throw new RangeError('transformImage: a training transform needs an Rng');
  if (t.kind === 'crop_flip') {
    const { top, left } = randomCropOffsets(rng!, t.padding);
    const flip = t.flip && rng!.random() < 0.5;
    writeCropped(image.data, image.shape, top - t.padding, left - t.padding, flip, lutOf(spec), out, offset);
    return;
  }
  if (t.kind === 'resized_crop_flip') {
    const box = resizedCropBox(rng!, h, w, t.scale, t.ratio);
    const flip = t.flip && rng!.random() < 0.5;
    const pixels = resizeBilinear(image.data, image.shape, t.size, t.size, { box });
    writeFloat(pixels, [t.size, t.size, c], flip, spec, out, offset);
    return;
  }
  if (spec.test.kind === 'resize_center_crop') {
    const [rh, rw] = shorterSideSize(h, w, spec.test.resize);
    const window = centerCropBox(rh, rw, spec.test.size);
    const pixels = resizeBilinear(image.data, image.shape, rh, rw, { window });
    writeFloat(pixels, [spec.test.size, spec.test.size, c], false, spec, out, offset);
    return;
  }
  writeCropped(image.data, image.shape, 0, 0, false, lutOf(spec), out, offset);
}
