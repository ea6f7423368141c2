/**
 * Real data whose classes differ in size: CIFAR binaries where class c has its own count load at
 * any imbalance ratio, taking what each class has with nMax from the data (the official
 * `img_max = len(data) / cls_num`, then `idx[:the_img_num]`); iNat sets that cannot make a
 * classifier are named by their field, not by a model-internal one.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseRunConfig } from '../../src/core/config.ts';
import { DataError } from '../../src/data/api.ts';
import { loadData } from '../../src/data/load.ts';
import { cifarRecords, inatJson, tempDir } from './fixtures.ts';

/** CIFAR-10 files where class c has 20 + 4c training images (spread over the 5 batches). */
function writeUnevenCifar10(dir: string): number[] {
  const labels: number[] = [];
  const perClass = Array.from({ length: 10 }, (_, c) => 20 + 4 * c);
  perClass.forEach((n, c) => {
    for (let i = 0; i < n; i++) labels.push(c);
  });
  for (let b = 0; b < 5; b++) {
    writeFileSync(join(dir, `data_batch_${b + 1}.bin`), cifarRecords(labels.filter((_, i) => i % 5 === b)));
  }
  writeFileSync(join(dir, 'test_batch.bin'), cifarRecords(Array.from({ length: 20 }, (_, i) => i % 10)));
  return perClass;
}

describe('uneven classes', () => {
  for (const ratio of [1, 2, 10]) {
    it(`CIFAR-10 binaries with classes of different sizes load at imbalance ratio ${ratio}: each class gives min(profile, what it has)`, async () => {
      const t = tempDir('uneven');
      try {
        const available = writeUnevenCifar10(t.dir);
        const cfg = parseRunConfig({
          dataset: { kind: 'cifar10', root: t.dir, imbalanceRatio: ratio },
        }).dataset;
        const data = await loadData(cfg);
        // The official generator, as a plain loop.
        const imgMax = available.reduce((a, b) => a + b, 0) / 10;
        const expected = available.map((has, c) =>
          Math.min(has, Math.trunc(imgMax * (1 / ratio) ** (c / 9))),
        );
        assert.deepEqual(data.trainCounts, expected);
      } finally {
        t.dispose();
      }
    });
  }

  it('an iNat set with num_classes 1 names the field, not ModelSpec', async () => {
    const t = tempDir('inat-one');
    try {
      const file = join(t.dir, 'train.json');
      writeFileSync(file, inatJson([{ fpath: 'a.jpg', category_id: 0 }], 1));
      const cfg = parseRunConfig({
        dataset: { kind: 'inat', root: t.dir, trainJson: file, valJson: file },
      }).dataset;
      await assert.rejects(
        loadData(cfg),
        (err: unknown) =>
          err instanceof DataError &&
          /"num_classes" must be an integer >= 2/.test(err.message) &&
          err.message.includes(file),
      );
    } finally {
      t.dispose();
    }
  });

  it('an iNat set with no images says so', async () => {
    const t = tempDir('inat-empty');
    try {
      const file = join(t.dir, 'train.json');
      writeFileSync(file, inatJson([], 3));
      const cfg = parseRunConfig({
        dataset: { kind: 'inat', root: t.dir, trainJson: file, valJson: file },
      }).dataset;
      await assert.rejects(
        loadData(cfg),
        (err: unknown) =>
          err instanceof DataError && /field "annotations" is empty: the set has no images/.test(err.message),
      );
    } finally {
      t.dispose();
    }
  });
});
