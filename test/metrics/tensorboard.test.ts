import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { confusionPng } from '../../src/metrics/confusion-image.ts';
import { epochScalars, readEventFile, TensorBoardWriter } from '../../src/metrics/tensorboard.ts';
import { crc32c, frameRecord, maskedCrc32c, readRecords, TfRecordError } from '../../src/metrics/tfrecord.ts';

test('tfrecord - CRC32C matches the Castagnoli check value and framing round-trips', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283); // the standard check value
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4: 32 zero bytes
  const recs = [Buffer.from('a'), Buffer.alloc(0), Buffer.from('hello tensorboard')];
  const file = Buffer.concat(recs.map(frameRecord));
  assert.deepEqual(
    readRecords(file).map((r) => Buffer.from(r).toString()),
    recs.map((r) => r.toString()),
  );
  assert.notEqual(maskedCrc32c(Buffer.from('x')), crc32c(Buffer.from('x')));
});

test('tfrecord - a flipped byte is caught by the data CRC', () => {
  const file = frameRecord(Buffer.from('payload'));
  file[14] ^= 1;
  assert.throws(
    () => readRecords(file),
    (e: unknown) => e instanceof TfRecordError && /data CRC/.test(e.message),
  );
  assert.throws(() => readRecords(file.subarray(0, 10)), /truncated header/);
});

test('tensorboard writer - file name, version header and epoch scalars read back', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bbn-tb-'));
  try {
    let t = 1_700_000_000.25;
    const w = new TensorBoardWriter(dir, { now: () => t, host: 'node a' });
    const row = {
      trainLoss: 1.5,
      trainAccuracy: 0.5,
      testTop1: 0.4,
      many: 0.7,
      medium: 0.3,
      few: null,
      alpha: 0.75,
      lr: 0.1,
    };
    t += 1;
    w.scalars(1, epochScalars(row));
    t += 1;
    w.scalars(2, [...epochScalars({ ...row, trainLoss: 1.2 }), { tag: 'nan', value: Number.NaN }]);
    w.close();
    w.close();
    assert.deepEqual(readdirSync(dir), ['events.out.tfevents.1700000000.node_a']);
    const events = readEventFile(readFileSync(w.path));
    assert.equal(events.length, 3);
    assert.deepEqual(events[0], {
      wallTime: 1_700_000_000.25,
      step: 0,
      fileVersion: 'brain.Event:2',
      scalars: [],
    });
    assert.equal(events[1].step, 1);
    assert.equal(events[1].wallTime, 1_700_000_001.25);
    const tags = events[1].scalars.map((s) => s.tag);
    assert.deepEqual(tags, [
      'loss/train',
      'accuracy/train',
      'accuracy/test_top1',
      'schedule/lr',
      'accuracy/many',
      'accuracy/medium',
      'schedule/alpha',
    ]);
    assert.equal(events[2].scalars[0].value, 1.2000000476837158, 'float32 on the wire');
    assert.ok(!events[2].scalars.some((s) => s.tag === 'nan'), 'non-finite values are skipped');
    assert.throws(() => w.scalars(3, epochScalars(row)), /closed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tensorboard writer - large steps and many values survive (multi-byte varints)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bbn-tb-'));
  try {
    const w = new TensorBoardWriter(dir, { now: () => 1, host: 'h' });
    const many = Array.from({ length: 300 }, (_, i) => ({ tag: `class/${i}`, value: i / 300 }));
    w.scalars(2 ** 40 + 3, many);
    w.close();
    const [, e] = readEventFile(readFileSync(w.path));
    assert.equal(e.step, 2 ** 40 + 3);
    assert.equal(e.scalars.length, 300);
    assert.equal(e.scalars[299].tag, 'class/299');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('confusion image - a PNG that sharp decodes: white where no image went, darker blue for a larger share', async () => {
  const { default: sharp } = await import('sharp');
  const m = [
    [8, 2, 0],
    [0, 5, 5],
    [0, 0, 4],
  ];
  const img = confusionPng(m);
  assert.deepEqual([img.width, img.height], [96, 96]);
  const { data, info } = await sharp(img.png).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height, info.channels], [96, 96, 3]);
  const at = (t: number, p: number) => {
    const i = ((t * 32 + 16) * 96 + (p * 32 + 16)) * 3;
    return [data[i], data[i + 1], data[i + 2]];
  };
  assert.deepEqual(at(0, 2), [255, 255, 255], 'zero cell: white');
  assert.deepEqual(at(2, 2), [8, 48, 107], 'a whole row: the darkest blue');
  assert.ok(at(0, 0)[0] < at(0, 1)[0], '80% is darker than 20%');
  assert.deepEqual(at(1, 1), at(1, 2), 'equal shares, equal colours');
});
