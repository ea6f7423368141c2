/** Small files in the real data formats (CIFAR binaries, BBN/iNat JSON + images) for the data tests. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';

/** A temporary directory removed by `dispose()`. */
export function tempDir(prefix: string): { dir: string; dispose(): void } {
  const dir = mkdtempSync(join(tmpdir(), `bbn-${prefix}-`));
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Pixel value of record r, channel c, pixel p of a fixture (distinct per channel and record). */
export function fixturePixel(r: number, c: number, p: number): number {
  return (r * 7 + c * 85 + p) % 256;
}

/**
 * CIFAR records with the given labels (CIFAR-100: `[coarse, fine]` pairs), pixels `fixturePixel`,
 * CHW planes as in the real files.
 */
export function cifarRecords(labels: readonly (number | readonly [number, number])[]): Buffer {
  const labelBytes = typeof labels[0] === 'number' ? 1 : 2;
  const rec = labelBytes + 3072;
  const buf = Buffer.alloc(labels.length * rec);
  labels.forEach((l, r) => {
    const off = r * rec;
    if (typeof l === 'number') buf[off] = l;
    else {
      buf[off] = l[0];
      buf[off + 1] = l[1];
    }
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 1024; p++) buf[off + labelBytes + c * 1024 + p] = fixturePixel(r, c, p);
    }
  });
  return buf;
}

/** Writes a CIFAR-10 directory: 5 train batches and a test batch, each record labels cycling 0..9. */
export function writeCifar10(dir: string, perBatch: number, testRecords: number, names = true): void {
  for (let b = 1; b <= 5; b++) {
    writeFileSync(
      join(dir, `data_batch_${b}.bin`),
      cifarRecords(Array.from({ length: perBatch }, (_, i) => (i + b) % 10)),
    );
  }
  writeFileSync(
    join(dir, 'test_batch.bin'),
    cifarRecords(Array.from({ length: testRecords }, (_, i) => i % 10)),
  );
  if (names) {
    const cls = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
    writeFileSync(join(dir, 'batches.meta.txt'), `${cls.join('\n')}\n\n`);
  }
}

/** Writes a CIFAR-100 directory: `train.bin` and `test.bin` with fine labels cycling 0..99. */
export function writeCifar100(dir: string, trainRecords: number, testRecords: number): void {
  const pairs = (n: number) => Array.from({ length: n }, (_, i) => [(i % 100) % 20, i % 100] as const);
  writeFileSync(join(dir, 'train.bin'), cifarRecords(pairs(trainRecords)));
  writeFileSync(join(dir, 'test.bin'), cifarRecords(pairs(testRecords)));
}

/** A solid-colour image file (`jpeg` or `png`, 1, 3 or 4 channels). */
export async function solidImage(
  width: number,
  height: number,
  channels: 1 | 3 | 4,
  value: number[],
  format: 'jpeg' | 'png',
): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * channels);
  for (let i = 0; i < width * height; i++)
    for (let c = 0; c < channels; c++) raw[i * channels + c] = value[c];
  const img = sharp(raw, { raw: { width, height, channels } });
  return format === 'jpeg' ? img.jpeg({ quality: 95 }).toBuffer() : img.png().toBuffer();
}

/** A BBN/iNat annotation document. */
export function inatJson(
  entries: readonly { fpath: string; category_id: unknown }[],
  numClasses: unknown,
): string {
  return JSON.stringify({
    annotations: entries.map((e, i) => ({ image_id: i + 1, im_height: 0, im_width: 0, ...e })),
    num_classes: numClasses,
  });
}
