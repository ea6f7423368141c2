/**
 * Reference numbers for the core tests, copied from BBN-SPEC (never computed by the code under test).
 * The full CIFAR-100 lists (the spec prints only their ends) were produced once by CPython 3 with
 * the official formula `[int(500.0 * r ** (i / 99.0)) for i in range(100)]`, r in (0.01, 0.02, 0.1);
 * their ends and totals match the spec's §5.1 table.
 */
import assert from 'node:assert/strict';

/** One row of BBN-SPEC §5.1. */
export interface LtTable {
  name: string;
  nMax: number;
  numClasses: number;
  imbalanceRatio: number;
  counts: number[];
  total: number;
  /** Iterations per epoch at B = 128, drop-last. */
  itersB128: number;
}

export const C100_IR100 = [
  500, 477, 455, 434, 415, 396, 378, 361, 344, 328, 314, 299, 286, 273, 260, 248, 237, 226, 216, 206, 197,
  188, 179, 171, 163, 156, 149, 142, 135, 129, 123, 118, 112, 107, 102, 98, 93, 89, 85, 81, 77, 74, 70, 67,
  64, 61, 58, 56, 53, 51, 48, 46, 44, 42, 40, 38, 36, 35, 33, 32, 30, 29, 27, 26, 25, 24, 23, 22, 21, 20, 19,
  18, 17, 16, 15, 15, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5,
];
export const C100_IR50 = [
  500, 480, 462, 444, 426, 410, 394, 379, 364, 350, 336, 323, 311, 299, 287, 276, 265, 255, 245, 235, 226,
  218, 209, 201, 193, 186, 178, 172, 165, 158, 152, 146, 141, 135, 130, 125, 120, 115, 111, 107, 102, 98, 95,
  91, 87, 84, 81, 78, 75, 72, 69, 66, 64, 61, 59, 56, 54, 52, 50, 48, 46, 44, 43, 41, 39, 38, 36, 35, 34, 32,
  31, 30, 29, 27, 26, 25, 24, 23, 22, 22, 21, 20, 19, 18, 18, 17, 16, 16, 15, 14, 14, 13, 13, 12, 12, 11, 11,
  10, 10, 10,
];
export const C100_IR10 = [
  500, 488, 477, 466, 455, 445, 434, 424, 415, 405, 396, 387, 378, 369, 361, 352, 344, 336, 328, 321, 314,
  306, 299, 292, 286, 279, 273, 266, 260, 254, 248, 243, 237, 232, 226, 221, 216, 211, 206, 201, 197, 192,
  188, 183, 179, 175, 171, 167, 163, 159, 156, 152, 149, 145, 142, 139, 135, 132, 129, 126, 123, 121, 118,
  115, 112, 110, 107, 105, 102, 100, 98, 95, 93, 91, 89, 87, 85, 83, 81, 79, 77, 75, 74, 72, 70, 69, 67, 66,
  64, 63, 61, 60, 58, 57, 56, 54, 53, 52, 51, 50,
];

/** BBN-SPEC §5.1. */
export const LT_TABLES: LtTable[] = [
  {
    name: 'CIFAR-10 IR100',
    nMax: 5000,
    numClasses: 10,
    imbalanceRatio: 100,
    counts: [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50],
    total: 12406,
    itersB128: 96,
  },
  {
    name: 'CIFAR-10 IR50',
    nMax: 5000,
    numClasses: 10,
    imbalanceRatio: 50,
    counts: [5000, 3237, 2096, 1357, 878, 568, 368, 238, 154, 100],
    total: 13996,
    itersB128: 109,
  },
  {
    name: 'CIFAR-10 IR10',
    nMax: 5000,
    numClasses: 10,
    imbalanceRatio: 10,
    counts: [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500],
    total: 20431,
    itersB128: 159,
  },
  {
    name: 'CIFAR-100 IR100',
    nMax: 500,
    numClasses: 100,
    imbalanceRatio: 100,
    counts: C100_IR100,
    total: 10847,
    itersB128: 84,
  },
  {
    name: 'CIFAR-100 IR50',
    nMax: 500,
    numClasses: 100,
    imbalanceRatio: 50,
    counts: C100_IR50,
    total: 12608,
    itersB128: 98,
  },
  {
    name: 'CIFAR-100 IR10',
    nMax: 500,
    numClasses: 100,
    imbalanceRatio: 10,
    counts: C100_IR10,
    total: 19573,
    itersB128: 152,
  },
];

/** The ends of the CIFAR-100 lists exactly as BBN-SPEC §5.1 prints them. */
export const C100_SPEC_ENDS: Record<number, { head: number[]; tail: number[] }> = {
  100: { head: [500, 477, 455, 434, 415], tail: [6, 5, 5, 5, 5] },
  50: { head: [500, 480, 462, 444, 426], tail: [11, 11, 10, 10, 10] },
  10: { head: [500, 488, 477], tail: [52, 51, 50] },
};

/** Labels with `counts[c]` images of class c, interleaved round-robin so classes are not contiguous. */
export function labelsFor(counts: readonly number[]): Int32Array {
  const total = counts.reduce((a, b) => a + b, 0);
  const labels = new Int32Array(total);
  const left = [...counts];
  let i = 0;
  while (i < total) {
    for (let c = 0; c < left.length; c++) {
      if (left[c] > 0) {
        labels[i++] = c;
        left[c]--;
      }
    }
  }
  return labels;
}

/** Asserts |actual − expected| <= tol for every entry, naming the first bad index. */
export function closeAll(
  actual: readonly number[],
  expected: readonly number[],
  tol: number,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  expected.forEach((e, i) => {
    assert.ok(
      Math.abs(actual[i] - e) <= tol,
      `${what}[${i}]: ${actual[i]} differs from ${e} by more than ${tol}`,
    );
  });
}
