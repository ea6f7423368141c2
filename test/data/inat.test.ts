import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseRunConfig } from '../../src/core/config.ts';
import { DataError } from '../../src/data/api.ts';
import { readInatAnnotations } from '../../src/data/inat.ts';
import { loadData } from '../../src/data/load.ts';
import { inatJson, solidImage, tempDir } from './fixtures.ts';

async function rejectsWith(p: Promise<unknown>, fragments: string[], record?: number) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof DataError, `expected DataError, got ${err}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" lacks "${f}"`);
    if (record !== undefined) assert.equal(err.record, record);
    return true;
  });
}

describe('BBN/iNaturalist JSON reader', () => {
  const tmp = tempDir('inat');
  const root = join(tmp.dir, 'images');
  const abs = join(tmp.dir, 'elsewhere', 'abs.png');
  const trainJson = join(tmp.dir, 'train.json');
  const valJson = join(tmp.dir, 'val.json');

  before(async () => {
    mkdirSync(join(root, 'Plantae'), { recursive: true });
    mkdirSync(join(tmp.dir, 'elsewhere'));
    writeFileSync(join(root, 'Plantae', 'a.jpg'), await solidImage(40, 30, 3, [200, 40, 10], 'jpeg'));
    writeFileSync(join(root, 'Plantae', 'b.png'), await solidImage(20, 50, 3, [1, 2, 3], 'png'));
    writeFileSync(join(root, 'grey.png'), await solidImage(16, 12, 1, [77], 'png'));
    writeFileSync(abs, await solidImage(8, 8, 4, [9, 8, 7, 128], 'png'));
    writeFileSync(
      trainJson,
      inatJson(
        [
          { fpath: 'Plantae/a.jpg', category_id: 0 },
          { fpath: 'Plantae/b.png', category_id: 2 },
          { fpath: 'grey.png', category_id: 1 },
          { fpath: abs, category_id: 0 },
        ],
        3,
      ),
    );
    writeFileSync(
      valJson,
      inatJson(
        [
          { fpath: 'Plantae/b.png', category_id: 1 },
          { fpath: 'missing.jpg', category_id: 0 },
        ],
        3,
      ),
    );
  });
  after(() => tmp.dispose());

  const cfg = () =>
    parseRunConfig({ dataset: { kind: 'inat', root, trainJson, valJson, imbalanceRatio: 50 } }).dataset;

  it('loads train and val as given, counts from the training file', async () => {
    const data = await loadData(cfg());
    assert.equal(data.train.size, 4);
    assert.equal(data.test.size, 2);
    assert.equal(data.train.numClasses, 3);
    assert.deepEqual(data.trainCounts, [2, 1, 1]);
    assert.deepEqual(Array.from(data.train.labels), [0, 2, 1, 0]);
    assert.equal(data.train.fixedShape, false);
    assert.match(data.profile, /as given/);
    assert.equal(data.augment.train.kind, 'resized_crop_flip');
  });

  it('decodes JPEG and PNG to RGB uint8 HWC at full size (grey expanded, alpha dropped)', async () => {
    const { train } = await loadData(cfg());
    const [jpg, png, grey, rgba] = await train.readImages([0, 1, 2, 3]);
    assert.deepEqual(jpg.shape, [30, 40, 3]);
    // JPEG is lossy: a solid colour comes back within a few levels.
    assert.ok(
      Math.abs(jpg.data[0] - 200) <= 4 && Math.abs(jpg.data[1] - 40) <= 4 && Math.abs(jpg.data[2] - 10) <= 4,
    );
    assert.deepEqual(png.shape, [50, 20, 3]);
    assert.deepEqual(Array.from(png.data.subarray(0, 6)), [1, 2, 3, 1, 2, 3]);
    assert.deepEqual(grey.shape, [12, 16, 3]);
    assert.deepEqual(Array.from(grey.data.subarray(0, 3)), [77, 77, 77]);
    assert.deepEqual(rgba.shape, [8, 8, 3], 'absolute fpath used as is');
    assert.deepEqual(Array.from(rgba.data.subarray(0, 3)), [9, 8, 7]);
  });

  it('names the missing image file and its annotation when the image is read', async () => {
    const { test } = await loadData(cfg());
    assert.equal((await test.readImages([0]))[0].shape[2], 3);
    await rejectsWith(test.readImages([1]), ['missing.jpg', 'annotation #1', 'val.json', 'ENOENT'], 1);
  });

  it('names a corrupt JPEG and its annotation', async () => {
    const good = await solidImage(64, 64, 3, [10, 20, 30], 'jpeg');
    writeFileSync(join(root, 'corrupt.jpg'), good.subarray(0, good.length >> 1));
    writeFileSync(join(root, 'text.jpg'), 'not an image at all');
    const file = join(tmp.dir, 'corrupt.json');
    writeFileSync(
      file,
      inatJson(
        [
          { fpath: 'grey.png', category_id: 0 },
          { fpath: 'corrupt.jpg', category_id: 0 },
          { fpath: 'text.jpg', category_id: 1 },
        ],
        2,
      ),
    );
    const data = await loadData({ ...cfg(), trainJson: file, valJson: file });
    await rejectsWith(data.train.readImages([0, 1]), ['corrupt.jpg', 'annotation #1', 'corrupt'], 1);
    await rejectsWith(data.train.readImages([2]), ['text.jpg', 'annotation #2', 'not an image'], 2);
  });

  const bad: [string, string, string[]][] = [
    ['not JSON', '{"annotations": [', ['not valid JSON']],
    ['a list at the top level', '[1, 2]', ['not a BBN/iNaturalist annotation file', 'top level']],
    ['no annotations field', '{"images": [], "num_classes": 3}', ['field "annotations"']],
    ['no num_classes', '{"annotations": []}', ['field "num_classes"']],
    ['num_classes not an integer', '{"annotations": [], "num_classes": 2.5}', ['"num_classes"', '2.5']],
    [
      'an annotation without fpath',
      '{"annotations": [{"fpath": "a.jpg", "category_id": 0}, {"category_id": 0}], "num_classes": 2}',
      ['annotation #1', '"fpath"'],
    ],
    [
      'category_id out of range',
      inatJson(
        [
          { fpath: 'a', category_id: 0 },
          { fpath: 'b', category_id: 3 },
        ],
        3,
      ),
      ['annotation #1', 'category_id 3', '[0, 3)'],
    ],
    [
      'category_id not an integer',
      inatJson([{ fpath: 'a', category_id: '1' }], 3),
      ['annotation #0', 'category_id "1"'],
    ],
  ];
  for (const [what, text, fragments] of bad) {
    it(`rejects an annotation file with ${what}, naming the file`, async () => {
      const file = join(tmp.dir, 'bad.json');
      writeFileSync(file, text);
      await rejectsWith(readInatAnnotations(file, root, true), ['bad.json', ...fragments]);
    });
  }

  it('lists the classes without a training image (ids not 0-based contiguous)', async () => {
    const file = join(tmp.dir, 'gappy.json');
    writeFileSync(
      file,
      inatJson(
        [
          { fpath: 'a', category_id: 1 },
          { fpath: 'b', category_id: 3 },
          { fpath: 'c', category_id: 4 },
        ],
        5,
      ),
    );
    await rejectsWith(loadData({ ...cfg(), trainJson: file }), [
      'gappy.json',
      'classes 0, 2',
      'no training image',
      '0-based and contiguous',
    ]);
    // The validation file may miss classes.
    assert.equal((await readInatAnnotations(file, root, false)).labels.length, 3);
  });

  it('names an annotation file that cannot be read, and num_classes that differ', async () => {
    await rejectsWith(loadData({ ...cfg(), valJson: join(tmp.dir, 'nope.json') }), [
      'nope.json',
      'ENOENT',
      'dataset.trainJson',
    ]);
    const other = join(tmp.dir, 'other.json');
    writeFileSync(other, inatJson([{ fpath: 'grey.png', category_id: 0 }], 4));
    await rejectsWith(loadData({ ...cfg(), valJson: other }), ['num_classes differs', 'other.json']);
  });
});
