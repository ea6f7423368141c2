/**
 * CIFAR-10 / CIFAR-100 from the "binary version" archives (cifar-10-binary.tar.gz,
 * cifar-100-binary.tar.gz), converted from CHW records to HWC uint8 and checked record by record.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DataError } from './api.ts';
import { InMemoryDataset } from './memory.ts';

/** Which CIFAR. */
export type CifarKind = 'cifar10' | 'cifar100';

/** File layout of one CIFAR binary distribution. */
interface CifarLayout {
  readonly title: string;
  readonly numClasses: number;
  readonly trainFiles: readonly string[];
  readonly testFiles: readonly string[];
  /** Label bytes before the 3072 pixel bytes: 1 (label) or 2 (coarse, fine). */
  readonly labelBytes: number;
  /** Optional text file with one class name per line. */
  readonly namesFile: string;
  /** Where the files come from, for "missing file" messages. */
  readonly source: string;
}

const LAYOUTS: Record<CifarKind, CifarLayout> = {
  cifar10: {
    title: 'CIFAR-10',
    numClasses: 10,
    trainFiles: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
    testFiles: ['test_batch.bin'],
    labelBytes: 1,
    namesFile: 'batches.meta.txt',
    source: 'cifar-10-binary.tar.gz (extracts to cifar-10-batches-bin/)',
  },
  cifar100: {
    title: 'CIFAR-100',
    numClasses: 100,
    trainFiles: ['train.bin'],
    testFiles: ['test.bin'],
    labelBytes: 2,
    namesFile: 'fine_label_names.txt',
    source: 'cifar-100-binary.tar.gz (extracts to cifar-100-binary/)',
  },
};

/** CIFAR images are 32x32 RGB. */
const SIDE = 32;
const PLANE = SIDE * SIDE;
const PIXEL_BYTES = 3 * PLANE;

/** Bytes of one record of this CIFAR (3073 for CIFAR-10, 3074 for CIFAR-100). */
export function cifarRecordBytes(kind: CifarKind): number {
  return LAYOUTS[kind].labelBytes + PIXEL_BYTES;
}

/** Decoded records of one or more files: HWC pixels and labels. */
export interface CifarRecords {
  readonly pixels: Uint8Array;
  readonly labels: Int32Array;
}

/**
 * Checks and decodes the records of `buffers` (one per file, named by `files`): the size must be a
 * whole number of records and each label (CIFAR-100: coarse < 20 and fine < 100) in range.
 */
export function decodeCifarRecords(
  kind: CifarKind,
  files: readonly string[],
  buffers: readonly Uint8Array[],
): CifarRecords {
  const layout = LAYOUTS[kind];
  const rec = cifarRecordBytes(kind);
  let total = 0;
  buffers.forEach((buf, f) => {
    if (buf.length === 0) {
      throw new DataError(`${layout.title} file ${files[f]} is empty; extract ${layout.source} again`, {
        file: files[f],
      });
    }
    if (buf.length % rec !== 0) {
      const record = Math.floor(buf.length / rec);
      throw new DataError(
        `${layout.title} file ${files[f]} is truncated: ${buf.length} bytes is not a whole number of ` +
          `${rec}-byte records; record #${record} breaks off after ${buf.length % rec} bytes. ` +
          `Download and extract ${layout.source} again`,
        { file: files[f], record },
      );
    }
    total += buf.length / rec;
  });
  const pixels = new Uint8Array(total * PIXEL_BYTES);
  const labels = new Int32Array(total);
  let n = 0;
  buffers.forEach((buf, f) => {
    for (let r = 0; r < buf.length / rec; r++, n++) {
      const off = r * rec;
      const label = buf[off + layout.labelBytes - 1];
      if (label >= layout.numClasses) {
        throw new DataError(
          `${layout.title} file ${files[f]} record #${r}: label ${label} is outside 0..${layout.numClasses - 1}; ` +
            `the file is corrupt or not ${layout.title} (check dataset.kind)`,
          { file: files[f], record: r },
        );
      }
      if (layout.labelBytes === 2 && buf[off] >= 20) {
        throw new DataError(
          `${layout.title} file ${files[f]} record #${r}: coarse label ${buf[off]} is outside 0..19; ` +
            `the file is corrupt or not ${layout.title} (check dataset.kind)`,
          { file: files[f], record: r },
        );
      }
      labels[n] = label;
      // CHW planes (R, G, B) to interleaved HWC.
      const src = off + layout.labelBytes;
      const dst = n * PIXEL_BYTES;
      for (let p = 0; p < PLANE; p++) {
        pixels[dst + 3 * p] = buf[src + p];
        pixels[dst + 3 * p + 1] = buf[src + PLANE + p];
        pixels[dst + 3 * p + 2] = buf[src + 2 * PLANE + p];
      }
    }
  });
  return { pixels, labels };
}

async function requireFiles(layout: CifarLayout, root: string): Promise<void> {
  const expected = [...layout.trainFiles, ...layout.testFiles];
  const rootStat = await stat(root).catch(() => undefined);
  if (!rootStat?.isDirectory()) {
    throw new DataError(
      `dataset.root ${root} is not a directory; it should hold the ${layout.title} binary files ` +
        `${expected.join(', ')} from ${layout.source}`,
      { file: root },
    );
  }
  const missing: string[] = [];
  for (const name of expected) {
    const s = await stat(join(root, name)).catch(() => undefined);
    if (!s?.isFile()) missing.push(name);
  }
  if (missing.length > 0) {
    throw new DataError(
      `${layout.title} file${missing.length > 1 ? 's' : ''} ${missing.map((m) => join(root, m)).join(', ')} ` +
        `missing; dataset.root should hold ${expected.join(', ')} from ${layout.source}`,
      { file: join(root, missing[0]) },
    );
  }
}

async function readRecords(kind: CifarKind, root: string, names: readonly string[]): Promise<CifarRecords> {
  const files = names.map((n) => join(root, n));
  const buffers = await Promise.all(files.map((f) => readFile(f)));
  return decodeCifarRecords(kind, files, buffers);
}

/** Class names from `batches.meta.txt` / `fine_label_names.txt`, if the file exists. */
async function readClassNames(layout: CifarLayout, root: string): Promise<string[] | undefined> {
  const file = join(root, layout.namesFile);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const names = text
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length !== layout.numClasses) {
    throw new DataError(
      `${file} lists ${names.length} class names, expected ${layout.numClasses} (one per line); ` +
        'fix or delete the file',
      { file },
    );
  }
  return names;
}

/** The full CIFAR train (50,000) and test (10,000) sets read from `root`, balanced, in file order. */
export async function loadCifar(
  kind: CifarKind,
  root: string,
): Promise<{ train: InMemoryDataset; test: InMemoryDataset }> {
  const layout = LAYOUTS[kind];
  await requireFiles(layout, root);
  const [train, test, names] = await Promise.all([
    readRecords(kind, root, layout.trainFiles),
    readRecords(kind, root, layout.testFiles),
    readClassNames(layout, root),
  ]);
  const shape = [SIDE, SIDE, 3] as const;
  return {
    train: new InMemoryDataset(`${kind}-train`, layout.numClasses, shape, train.pixels, train.labels, names),
    test: new InMemoryDataset(`${kind}-test`, layout.numClasses, shape, test.pixels, test.labels, names),
  };
}
