import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classCounts, stepCounts } from '../../src/core/profiles.ts';
import { DataError, type ImageDataset, type RawImage } from '../../src/data/api.ts';
import { applyLongTail, type LongTailOptions } from '../../src/data/long-tail.ts';

/** A data set of labels only (the long tail never reads pixels). */
function labelsOnly(name: string, numClasses: number, labels: Int32Array): ImageDataset {
  return {
    name,
    numClasses,
    size: labels.length,
    imageShape: [32, 32, 3],
    fixedShape: true,
    labels,
    readImages: (): Promise<RawImage[]> => Promise.reject(new Error('labels only')),
  };
}

/** CIFAR-sized training labels in a scrambled (batch-like) order: 50,000 / C of each class. */
function cifarLabels(numClasses: number): Int32Array {
  const n = 50000;
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = (i * 7919) % numClasses;
  return labels;
}

const opts = (imbalanceRatio: number, profile: 'exp' | 'step' = 'exp'): LongTailOptions => ({
  profile,
  imbalanceRatio,
  stepMinorFraction: 0.5,
  subsampleSeed: 0,
});

describe('long-tail application', () => {
  const table: [number, number, number[] | null, number][] = [
    [10, 100, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], 12406],
    [10, 50, [5000, 3237, 2096, 1357, 878, 568, 368, 238, 154, 100], 13996],
    [10, 10, [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500], 20431],
    [100, 100, null, 10847],
    [100, 50, null, 12608],
    [100, 10, null, 19573],
  ];
  for (const [c, ir, counts, total] of table) {
    it(`CIFAR-${c}-LT IR ${ir} keeps the BBN-SPEC §5.1 counts (N = ${total}) with nMax = 50000/C`, () => {
      const pool = labelsOnly(`cifar${c}-train`, c, cifarLabels(c));
      const r = applyLongTail(pool, opts(ir), { nMax: 50000 / c, name: `cifar${c}-lt` });
      if (counts) assert.deepEqual(r.counts, counts);
      assert.equal(r.train.size, total);
      assert.deepEqual(classCounts(r.train.labels, c), r.counts);
      assert.equal(r.train.name, `cifar${c}-lt`);
      if (c === 100) {
        assert.equal(r.counts[0], 500);
        assert.equal(r.counts[99], 500 / ir);
      }
    });
  }

  it('defaults nMax to the smallest class of the pool', () => {
    const labels = Int32Array.from([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2]);
    const r = applyLongTail(labelsOnly('p', 3, labels), opts(1));
    assert.deepEqual(r.counts, [3, 3, 3]);
  });

  it('follows the step profile', () => {
    const pool = labelsOnly('p', 10, cifarLabels(10));
    const r = applyLongTail(pool, opts(10, 'step'), { nMax: 5000 });
    assert.deepEqual(r.counts, stepCounts(5000, 10, 10, 0.5));
    assert.deepEqual(r.counts, [5000, 5000, 5000, 5000, 5000, 500, 500, 500, 500, 500]);
    assert.match(r.profile, /step profile, imbalance ratio 10, minor fraction 0.5, nMax 5000/);
  });

  it('names classes with no images in the pool', () => {
    const labels = Int32Array.from([0, 0, 2, 2]);
    assert.throws(
      () => applyLongTail(labelsOnly('toy-train', 4, labels), opts(2)),
      (err: unknown) =>
        err instanceof DataError && /toy-train: classes 1, 3 have no training images/.test(err.message),
    );
  });

  it('explains a profile that would empty a tail class', () => {
    const labels = Int32Array.from([0, 0, 1, 1]);
    assert.throws(
      () => applyLongTail(labelsOnly('toy-train', 2, labels), opts(100)),
      (err: unknown) =>
        err instanceof DataError &&
        err.message.includes('dataset.imbalanceRatio 100') &&
        err.message.includes('class 1'),
    );
  });

  it('draws the subset from the subsample seed alone', async () => {
    // A pool whose images carry their own index, so a subset's choice is visible.
    const base = labelsOnly('p', 10, cifarLabels(10));
    const pool: ImageDataset = {
      ...base,
      readImages: async (idx) =>
        Array.from(
          idx,
          (k): RawImage => ({ data: new Uint8Array(Int32Array.of(k).buffer), shape: [1, 1, 4] }),
        ),
    };
    const chosen = async (seed: number) => {
      const r = applyLongTail(pool, { ...opts(100), subsampleSeed: seed }, { nMax: 5000 });
      const imgs = await r.train.readImages(Array.from({ length: r.train.size }, (_, i) => i));
      return { counts: r.counts, ids: imgs.map((m) => new Int32Array(m.data.buffer)[0]) };
    };
    const a = await chosen(0);
    const b = await chosen(0);
    const c = await chosen(1);
    assert.deepEqual(a, b);
    assert.deepEqual(a.counts, c.counts);
    assert.notDeepEqual(a.ids, c.ids);
    // Kept indices are ascending and distinct.
    assert.ok(a.ids.every((k, i) => i === 0 || k > a.ids[i - 1]));
  });
});
