import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseRunConfig } from '../../src/core/config.ts';
import { exponentialCounts } from '../../src/core/profiles.ts';
import { DataError } from '../../src/data/api.ts';
import { loadCifar } from '../../src/data/cifar.ts';
import { loadData } from '../../src/data/load.ts';
import { cifarRecords, fixturePixel, tempDir, writeCifar10, writeCifar100 } from './fixtures.ts';

/** Asserts that `p` rejects with a DataError whose message contains every fragment. */
async function rejectsWith(p: Promise<unknown>, fragments: (string | RegExp)[], record?: number) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof DataError, `expected DataError, got ${err}`);
    for (const f of fragments) {
      if (typeof f === 'string') assert.ok(err.message.includes(f), `"${err.message}" lacks "${f}"`);
      else assert.match(err.message, f);
    }
    if (record !== undefined) assert.equal(err.record, record);
    return true;
  });
}

describe('CIFAR-10 binary reader', () => {
  const tmp = tempDir('cifar10');
  before(() => writeCifar10(tmp.dir, 20, 30));
  after(() => tmp.dispose());

  it('reads all train batches in order and the test batch, as HWC uint8', async () => {
    const { train, test } = await loadCifar('cifar10', tmp.dir);
    assert.equal(train.size, 100);
    assert.equal(test.size, 30);
    assert.deepEqual(train.imageShape, [32, 32, 3]);
    // Record 0 of data_batch_2 is train image 20, label (0 + 2) % 10.
    assert.equal(train.labels[20], 2);
    const [img] = await train.readImages([20]);
    for (const p of [0, 1, 33, 1023]) {
      for (let c = 0; c < 3; c++)
        assert.equal(img.data[p * 3 + c], fixturePixel(0, c, p), `pixel ${p} ch ${c}`);
    }
    const [t5] = await test.readImages([5]);
    assert.equal(t5.data[3 * 7 + 2], fixturePixel(5, 2, 7));
    assert.equal(test.labels[5], 5);
  });

  it('reads class names from batches.meta.txt', async () => {
    const { train } = await loadCifar('cifar10', tmp.dir);
    assert.equal(train.classNames?.length, 10);
    assert.equal(train.classNames?.[0], 'airplane');
    assert.equal(train.classNames?.[9], 'truck');
  });

  it('applies the exponential long tail to the training set only, nMax = records / classes', async () => {
    const cfg = parseRunConfig({ dataset: { kind: 'cifar10', root: tmp.dir, imbalanceRatio: 10 } });
    const data = await loadData(cfg.dataset);
    assert.deepEqual(data.trainCounts, exponentialCounts(10, 10, 10));
    assert.equal(
      data.train.size,
      data.trainCounts.reduce((a, b) => a + b),
    );
    assert.equal(data.test.size, 30);
    assert.match(data.profile, /exp profile, imbalance ratio 10, nMax 10/);
    // Same seed, same subset; another seed, another subset with the same counts.
    const again = await loadData(cfg.dataset);
    const other = await loadData({ ...cfg.dataset, subsampleSeed: 5 });
    const pixelsOf = async (d: typeof data) =>
      (await d.train.readImages(Array.from({ length: d.train.size }, (_, i) => i))).map((x) => x.data[0]);
    assert.deepEqual(await pixelsOf(again), await pixelsOf(data));
    assert.deepEqual(other.trainCounts, data.trainCounts);
    assert.notDeepEqual(await pixelsOf(other), await pixelsOf(data));
  });

  it('names the missing file and what the directory should hold', async () => {
    const t = tempDir('cifar10-missing');
    try {
      writeCifar10(t.dir, 10, 10);
      const { rmSync } = await import('node:fs');
      rmSync(join(t.dir, 'data_batch_3.bin'));
      await rejectsWith(loadCifar('cifar10', t.dir), [
        'data_batch_3.bin',
        'missing',
        'test_batch.bin',
        'cifar-10-binary.tar.gz',
      ]);
    } finally {
      t.dispose();
    }
  });

  it('says the root directory does not exist', async () => {
    await rejectsWith(loadCifar('cifar10', join(tmp.dir, 'nope')), [
      'nope',
      'is not a directory',
      'data_batch_1.bin',
    ]);
  });

  it('names a truncated file and the record where it breaks', async () => {
    const t = tempDir('cifar10-trunc');
    try {
      writeCifar10(t.dir, 10, 10);
      const full = cifarRecords([1, 2, 3]);
      writeFileSync(join(t.dir, 'data_batch_4.bin'), full.subarray(0, 2 * 3073 + 100));
      await rejectsWith(loadCifar('cifar10', t.dir), ['data_batch_4.bin', 'truncated', 'record #2'], 2);
    } finally {
      t.dispose();
    }
  });

  it('names the file, record and value of a label out of range', async () => {
    const t = tempDir('cifar10-label');
    try {
      writeCifar10(t.dir, 10, 10);
      writeFileSync(join(t.dir, 'test_batch.bin'), cifarRecords([0, 1, 2, 3, 12, 5]));
      await rejectsWith(loadCifar('cifar10', t.dir), ['test_batch.bin', 'record #4', 'label 12', '0..9'], 4);
    } finally {
      t.dispose();
    }
  });

  it('rejects a class-names file with the wrong number of names', async () => {
    const t = tempDir('cifar10-names');
    try {
      writeCifar10(t.dir, 10, 10);
      writeFileSync(join(t.dir, 'batches.meta.txt'), 'cat\ndog\n');
      await rejectsWith(loadCifar('cifar10', t.dir), ['batches.meta.txt', '2 class names', 'expected 10']);
    } finally {
      t.dispose();
    }
  });
});

describe('CIFAR-100 binary reader', () => {
  const tmp = tempDir('cifar100');
  before(() => {
    writeCifar100(tmp.dir, 300, 100);
    writeFileSync(
      join(tmp.dir, 'fine_label_names.txt'),
      Array.from({ length: 100 }, (_, i) => `c${i}`).join('\n'),
    );
  });
  after(() => tmp.dispose());

  it('uses the fine label and skips the coarse byte', async () => {
    const { train, test } = await loadCifar('cifar100', tmp.dir);
    assert.equal(train.size, 300);
    assert.equal(test.size, 100);
    assert.equal(train.numClasses, 100);
    assert.equal(train.labels[157], 57);
    const [img] = await train.readImages([157]);
    assert.equal(img.data[3 * 100 + 1], fixturePixel(157, 1, 100));
    assert.equal(train.classNames?.[57], 'c57');
  });

  it('applies the long tail with nMax = 500 per class on full data (here 3)', async () => {
    const cfg = parseRunConfig({ dataset: { kind: 'cifar100', root: tmp.dir, imbalanceRatio: 3 } });
    const data = await loadData(cfg.dataset);
    assert.deepEqual(data.trainCounts, exponentialCounts(3, 100, 3));
  });

  it('names the record whose fine label is out of range', async () => {
    const t = tempDir('cifar100-label');
    try {
      writeCifar100(t.dir, 10, 10);
      writeFileSync(
        join(t.dir, 'train.bin'),
        cifarRecords([
          [0, 0],
          [1, 1],
          [2, 140],
        ]),
      );
      await rejectsWith(loadCifar('cifar100', t.dir), ['train.bin', 'record #2', 'label 140', '0..99'], 2);
    } finally {
      t.dispose();
    }
  });

  it('names a truncated train.bin (CIFAR-10 records are one byte short)', async () => {
    const t = tempDir('cifar100-trunc');
    try {
      writeCifar100(t.dir, 10, 10);
      writeFileSync(join(t.dir, 'train.bin'), cifarRecords([1, 2, 3, 4]));
      await rejectsWith(
        loadCifar('cifar100', t.dir),
        ['train.bin', 'truncated', '3074-byte records', 'record #3'],
        3,
      );
    } finally {
      t.dispose();
    }
  });

  it('tells a CIFAR-10 directory given as CIFAR-100 by its missing files', async () => {
    const t = tempDir('cifar-wrong');
    try {
      writeCifar10(t.dir, 10, 10);
      await rejectsWith(loadCifar('cifar100', t.dir), [
        'train.bin',
        'test.bin',
        'missing',
        'cifar-100-binary',
      ]);
    } finally {
      t.dispose();
    }
  });
});
