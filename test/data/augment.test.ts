import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRunConfig } from '../../src/core/config.ts';
import { Rng } from '../../src/core/rng.ts';
import type { ImageShape, RawImage } from '../../src/data/api.ts';
import {
  type AugmentSpec,
  augmentSpecFor,
  CIFAR_MEAN,
  CIFAR_STD,
  centerCropBox,
  outputShape,
  randomCropOffsets,
  resizedCropBox,
  roundHalfEven,
  shorterSideSize,
  transformImage,
} from '../../src/data/augment.ts';

const specOf = (dataset: Record<string, unknown>) => augmentSpecFor(parseRunConfig({ dataset }).dataset);
const CIFAR = specOf({ kind: 'cifar10', root: 'x' });

/** An image whose every byte is >= 1, so zero padding is recognisable. */
function image(shape: ImageShape, f: (y: number, x: number, c: number) => number): RawImage {
  const [h, w, c] = shape;
  const data = new Uint8Array(h * w * c);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) data[(y * w + x) * c + k] = f(y, x, k);
  return { data, shape };
}

function run(img: RawImage, spec: AugmentSpec, train: boolean, rng?: Rng): Float32Array {
  const [h, w, c] = outputShape(spec, train, img.shape);
  const out = new Float32Array(h * w * c);
  transformImage(img, spec, train, rng, out, 0);
  return out;
}

/** Inverts the CIFAR normalisation back to bytes. */
const toByte = (v: number, c: number) => Math.round((v * CIFAR_STD[c] + CIFAR_MEAN[c]) * 255);

describe('augmentation', () => {
  it('picks per-kind defaults for augment: auto', () => {
    assert.deepEqual(CIFAR.train, { kind: 'crop_flip', padding: 4, flip: true });
    assert.deepEqual(CIFAR.mean, [0.4914, 0.4822, 0.4465]);
    assert.deepEqual(CIFAR.std, [0.2023, 0.1994, 0.201]);
    const mnist = specOf({ kind: 'mnist' });
    assert.deepEqual(mnist.train, { kind: 'crop_flip', padding: 2, flip: false });
    assert.deepEqual([mnist.mean, mnist.std], [[0.1307], [0.3081]]);
    const inat = specOf({ kind: 'inat', trainJson: 'a', valJson: 'b' });
    assert.equal(inat.train.kind, 'resized_crop_flip');
    assert.deepEqual(inat.test, { kind: 'resize_center_crop', resize: 256, size: 224 });
    assert.deepEqual(inat.mean, [0.485, 0.456, 0.406]);
    assert.equal(specOf({ kind: 'synthetic', numClasses: 2, perClass: 2 }).train.kind, 'none');
    assert.deepEqual(specOf({ kind: 'mnist', augment: 'crop_flip' }).train, {
      kind: 'crop_flip',
      padding: 2,
      flip: true,
    });
    assert.throws(
      () => specOf({ kind: 'inat', trainJson: 'a', valJson: 'b', augment: 'crop_flip' }),
      /iNat images vary/,
    );
  });

  it('test-time CIFAR is ToTensor + Normalize only', () => {
    const img = image([32, 32, 3], (y, x, c) => (y * 32 + x + c * 50) % 256);
    const out = run(img, CIFAR, false);
    for (let i = 0; i < out.length; i += 97) {
      const c = i % 3;
      assert.ok(Math.abs(out[i] - (img.data[i] / 255 - CIFAR_MEAN[c]) / CIFAR_STD[c]) < 1e-6);
    }
  });

  it('is deterministic per Rng and varies across Rngs', () => {
    const img = image([32, 32, 3], (y, x, c) => 1 + ((y * 7 + x * 3 + c) % 250));
    const a = run(img, CIFAR, true, Rng.fromSeed(7).split(3));
    const b = run(img, CIFAR, true, Rng.fromSeed(7).split(3));
    assert.deepEqual(a, b);
    const distinct = new Set<string>();
    for (let s = 0; s < 20; s++) distinct.add(run(img, CIFAR, true, Rng.fromSeed(s)).slice(0, 400).join(','));
    assert.ok(distinct.size > 10);
  });

  it('crops with zero padding applied before normalisation, offsets in [0, 8], and flips', () => {
    // Pixel bytes encode their own (y, x); every byte is >= 1, so 0 marks padding.
    const img = image([32, 32, 3], (y, x, c) => (c === 0 ? y + 1 : c === 1 ? x + 1 : 200));
    const zero = CIFAR_MEAN.map((m, c) => (0 - m) / CIFAR_STD[c]);
    // 2,000 draws for the coverage of the 81 offsets (P(one never drawn) ≈ 81·(80/81)^2000 ≈ 1e-9;
    // with 400 it would be ≈ 0.57, so the check would pass or fail by the seeds' luck).
    const offsets = new Set<string>();
    for (let s = 0; s < 2000; s++) {
      const { top, left } = randomCropOffsets(Rng.fromSeed(s), 4);
      assert.ok(top >= 0 && top <= 8 && left >= 0 && left <= 8);
      offsets.add(`${top},${left}`);
    }
    let flips = 0;
    for (let s = 0; s < 400; s++) {
      const { top, left } = randomCropOffsets(Rng.fromSeed(s), 4);
      const out = run(img, CIFAR, true, Rng.fromSeed(s));
      // Find the flip from the x gradient of the centre row.
      const px = (y: number, x: number) => [0, 1, 2].map((c) => out[(y * 32 + x) * 3 + c]);
      const xAt = (x: number) => toByte(px(16, x)[1], 1) - 1;
      const flipped = xAt(20) < xAt(10);
      if (flipped) flips++;
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const sy = y + top - 4;
          const sxUnflipped = (flipped ? 31 - x : x) + left - 4;
          const inside = sy >= 0 && sy < 32 && sxUnflipped >= 0 && sxUnflipped < 32;
          const v = px(y, x);
          if (!inside) {
            for (let c = 0; c < 3; c++)
              assert.ok(Math.abs(v[c] - zero[c]) < 1e-6, `seed ${s} (${y},${x}) pad`);
          } else {
            assert.equal(toByte(v[0], 0), sy + 1);
            assert.equal(toByte(v[1], 1), sxUnflipped + 1);
          }
        }
      }
    }
    assert.equal(offsets.size, 81, 'all 9x9 offsets occur');
    assert.ok(flips > 150 && flips < 250, `flip rate ${flips}/400`);
    // The normalised zero border is about (-2.429, -2.418, -2.221) (BBN-SPEC §5.1).
    assert.deepEqual(
      zero.map((z) => z.toFixed(3)),
      ['-2.429', '-2.418', '-2.221'],
    );
  });

  it('never flips MNIST under auto and pads by 2', () => {
    const spec = specOf({ kind: 'mnist' });
    // A left-heavy image: the left half is bright.
    const img = image([28, 28, 1], (_y, x) => (x < 14 ? 255 : 1));
    for (let s = 0; s < 50; s++) {
      const out = run(img, spec, true, Rng.fromSeed(s));
      const at = (x: number) => out[14 * 28 + x];
      assert.ok(at(8) > at(20), `seed ${s} flipped`);
      // Padding 2: at most 2 zero columns or rows at any edge.
      const zero = (0 - 0.1307) / 0.3081;
      assert.ok(Math.abs(out[14 * 28 + 2] - zero) > 1e-6 || Math.abs(out[14 * 28 + 3] - zero) > 1e-6);
    }
  });

  it('RandomResizedCrop boxes fit the image with area in [0.08, 1] and ratio in [3/4, 4/3]', () => {
    for (let s = 0; s < 300; s++) {
      const b = resizedCropBox(Rng.fromSeed(s), 300, 400);
      assert.ok(b.top >= 0 && b.left >= 0 && b.top + b.height <= 300 && b.left + b.width <= 400);
      const area = (b.height * b.width) / (300 * 400);
      assert.ok(area >= 0.075 && area <= 1.0001, `area ${area}`);
      const ratio = b.width / b.height;
      assert.ok(ratio >= 0.7 && ratio <= 1.4, `ratio ${ratio}`);
    }
  });

  it('falls back to a center crop clamped to the ratio range when no try fits', () => {
    // A 2x200 strip: no crop of ratio <= 4/3 and area >= 8% fits, so all 10 tries fail.
    const b = resizedCropBox(Rng.fromSeed(1), 2, 200);
    assert.deepEqual(b, { top: 0, left: 98, height: 2, width: 3 }); // w = round(2 * 4/3) = 3, left = (200-3)//2
    const tall = resizedCropBox(Rng.fromSeed(1), 200, 2);
    assert.deepEqual(tall, { top: 98, left: 0, height: 3, width: 2 }); // h = round(2 / (3/4)) = 3
  });

  it('resized-crop output is 224x224, deterministic and flips', () => {
    const spec = specOf({ kind: 'inat', trainJson: 'a', valJson: 'b' });
    const img = image([60, 80, 3], (_y, x) => 1 + x * 3);
    assert.deepEqual(outputShape(spec, true, img.shape), [224, 224, 3]);
    const a = run(img, spec, true, Rng.fromSeed(4));
    assert.equal(a.length, 224 * 224 * 3);
    assert.deepEqual(a, run(img, spec, true, Rng.fromSeed(4)));
    let flipped = 0;
    for (let s = 0; s < 40; s++) {
      const o = run(img, spec, true, Rng.fromSeed(s));
      if (o[(100 * 224 + 10) * 3] > o[(100 * 224 + 200) * 3]) flipped++;
    }
    assert.ok(flipped > 8 && flipped < 32, `flipped ${flipped}/40`);
  });

  it('test-time 224: shorter side to 256, then the center 224 crop', () => {
    assert.deepEqual(shorterSideSize(300, 400, 256), [256, 341]);
    assert.deepEqual(shorterSideSize(500, 300, 256), [426, 256]);
    assert.deepEqual(centerCropBox(256, 341, 224), { top: 16, left: 58, height: 224, width: 224 }); // round(58.5) = 58
    assert.equal(roundHalfEven(2.5), 2);
    assert.equal(roundHalfEven(3.5), 4);
    assert.equal(roundHalfEven(-0.5), -0);
    const spec = specOf({ kind: 'inat', trainJson: 'a', valJson: 'b' });
    // A linear ramp v(x) = x + 1 stays linear under the (symmetric) triangle filter: resized column j
    // reads source position (j + 0.5) * 240/256 - 0.5, i.e. value (j + 0.5) * 0.9375 + 0.5.
    const img = image([300, 240, 3], (_y, x) => x + 1);
    assert.deepEqual(shorterSideSize(300, 240, 256), [320, 256]);
    assert.deepEqual(centerCropBox(320, 256, 224), { top: 48, left: 16, height: 224, width: 224 });
    assert.deepEqual(outputShape(spec, false, img.shape), [224, 224, 3]);
    const out = run(img, spec, false);
    for (const x of [0, 100, 223]) {
      const v = ((x + 16 + 0.5) * 0.9375 + 0.5) / 255;
      for (let c = 0; c < 3; c++) {
        const got = out[(112 * 224 + x) * 3 + c];
        const want = (v - spec.mean[c]) / spec.std[c];
        assert.ok(Math.abs(got - want) < 1e-4, `x ${x} c ${c}: ${got} vs ${want}`);
      }
    }
  });

  it('rejects a channel mismatch and a training transform without an Rng', () => {
    const grey = image([32, 32, 1], () => 1);
    assert.throws(() => run(grey, CIFAR, false), /1 channel\(s\).*expects 3/);
    const rgb = image([32, 32, 3], () => 1);
    assert.throws(() => run(rgb, CIFAR, true), /needs an Rng/);
  });
});
