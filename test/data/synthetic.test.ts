import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRunConfig } from '../../src/core/config.ts';
import { classCounts, exponentialCounts } from '../../src/core/profiles.ts';
import type { ImageDataset } from '../../src/data/api.ts';
import { loadData } from '../../src/data/load.ts';
import { makeSynthetic } from '../../src/data/synthetic.ts';

async function pixels(ds: ImageDataset): Promise<Uint8Array[]> {
  return (await ds.readImages(Array.from({ length: ds.size }, (_, i) => i))).map((m) => m.data);
}

describe('synthetic data', () => {
  it('is deterministic and balanced before the long tail', async () => {
    const opts = { numClasses: 4, perClass: 30, testPerClass: 10, imageSize: 8, channels: 3 };
    const a = makeSynthetic(opts);
    const b = makeSynthetic(opts);
    assert.deepEqual(a.train.pixels, b.train.pixels);
    assert.deepEqual(a.test.pixels, b.test.pixels);
    assert.notDeepEqual(
      a.train.pixels.subarray(0, 192),
      a.test.pixels.subarray(0, 192),
      'train and test noise differ',
    );
    assert.deepEqual(classCounts(a.train.labels, 4), [30, 30, 30, 30]);
    assert.deepEqual(classCounts(a.test.labels, 4), [10, 10, 10, 10]);
    assert.deepEqual(a.train.imageShape, [8, 8, 3]);
  });

  it('is learnable: nearest class mean classifies the test set', async () => {
    const { train, test } = makeSynthetic({
      numClasses: 10,
      perClass: 20,
      testPerClass: 20,
      imageSize: 16,
      channels: 1,
    });
    const bytes = 16 * 16;
    const means = Array.from({ length: 10 }, () => new Float64Array(bytes));
    (await pixels(train)).forEach((img, i) => {
      for (let p = 0; p < bytes; p++) means[train.labels[i]][p] += img[p] / 20;
    });
    let correct = 0;
    (await pixels(test)).forEach((img, i) => {
      let best = -1;
      let bestD = Infinity;
      means.forEach((m, k) => {
        let d = 0;
        for (let p = 0; p < bytes; p++) d += (img[p] - m[p]) ** 2;
        if (d < bestD) {
          bestD = d;
          best = k;
        }
      });
      if (best === test.labels[i]) correct++;
    });
    assert.ok(correct >= 190, `${correct}/200`);
  });

  it('takes the long tail from the config, nMax = perClass, test set untouched', async () => {
    const cfg = parseRunConfig({
      dataset: {
        kind: 'synthetic',
        numClasses: 5,
        perClass: 40,
        testPerClass: 6,
        imbalanceRatio: 10,
        imageSize: 8,
      },
    });
    const data = await loadData(cfg.dataset);
    assert.deepEqual(data.trainCounts, exponentialCounts(40, 5, 10));
    assert.deepEqual(classCounts(data.train.labels, 5), data.trainCounts);
    assert.equal(data.test.size, 30);
    assert.equal(data.train.name, 'synthetic-lt');
    assert.deepEqual(data.augment.train, { kind: 'none' });
    assert.deepEqual(data.train.classNames?.slice(0, 2), ['class0', 'class1']);
  });
});
