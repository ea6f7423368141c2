import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accuracyReport, argmax, confusionMatrix, topK } from '../../src/core/metrics.ts';
import { CoreValueError, Rng } from '../../src/core/rng.ts';

/** Plain-loop reference of accuracyReport, written independently of the implementation. */
function reference(pred: number[], lab: number[], c: number, train: number[], many = 100, few = 20) {
  const cm: number[][] = [];
  for (let i = 0; i < c; i++) cm.push(new Array(c).fill(0));
  for (let i = 0; i < lab.length; i++) cm[lab[i]][pred[i]] += 1;
  let right = 0;
  for (let i = 0; i < c; i++) right += cm[i][i];
  const perClass: number[] = [];
  for (let i = 0; i < c; i++) {
    let n = 0;
    for (let j = 0; j < c; j++) n += cm[i][j];
    perClass.push(n === 0 ? Number.NaN : cm[i][i] / n);
  }
  const groupMean = (inGroup: (n: number) => boolean) => {
    const xs: number[] = [];
    for (let i = 0; i < c; i++) if (inGroup(train[i]) && !Number.isNaN(perClass[i])) xs.push(perClass[i]);
    return { mean: xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length, n: xs.length };
  };
  const m = groupMean((n) => n > many);
  const f = groupMean((n) => n < few);
  const md = groupMean((n) => n <= many && n >= few);
  return { cm, top1: right / lab.length, perClass, many: m, medium: md, few: f };
}

interface Case {
  name: string;
  pred: number[];
  lab: number[];
  c: number;
  train: number[];
}

function randomCase(seed: number): Case {
  const rng = Rng.fromSeed(seed);
  const c = 2 + rng.int(12);
  const n = 1 + rng.int(400);
  const lab = Array.from({ length: n }, () => rng.int(c));
  const pred = lab.map((y) => (rng.random() < 0.6 ? y : rng.int(c)));
  const train = Array.from({ length: c }, () => 1 + rng.int(300));
  return { name: `random seed ${seed} (C=${c}, n=${n})`, pred, lab, c, train };
}

const CASES: Case[] = [
  { name: 'all correct', pred: [0, 1, 2, 2], lab: [0, 1, 2, 2], c: 3, train: [500, 50, 5] },
  { name: 'all wrong', pred: [1, 2, 0], lab: [0, 1, 2], c: 3, train: [500, 50, 5] },
  {
    name: 'class 2 absent from the test set',
    pred: [0, 0, 1, 3, 3, 1],
    lab: [0, 1, 1, 3, 3, 3],
    c: 4,
    train: [500, 60, 10, 8],
  },
  {
    name: 'an empty medium group',
    pred: [0, 1, 1],
    lab: [0, 1, 1],
    c: 2,
    train: [150, 3],
  },
  ...[1, 2, 3, 4, 5, 6].map(randomCase),
];

const sameNum = (a: number, b: number) => (Number.isNaN(a) ? Number.isNaN(b) : Math.abs(a - b) < 1e-12);

describe('metrics - against a plain-loop reference', () => {
  for (const k of CASES) {
    it(k.name, () => {
      const ref = reference(k.pred, k.lab, k.c, k.train);
      const cm = confusionMatrix(k.pred, k.lab, k.c);
      assert.deepEqual(
        cm.map((row) => Array.from(row)),
        ref.cm,
      );
      const rep = accuracyReport(k.pred, k.lab, k.c, k.train);
      assert.ok(sameNum(rep.top1, ref.top1), 'top1');
      assert.equal(rep.perClass.length, k.c);
      rep.perClass.forEach((a, i) => {
        assert.ok(sameNum(a, ref.perClass[i]), `class ${i}`);
      });
      for (const g of ['many', 'medium', 'few'] as const) {
        const want = ref[g];
        if (want.mean === null) assert.equal(rep[g], null, g);
        else assert.ok(rep[g] !== null && sameNum(rep[g], want.mean), g);
        assert.equal(rep.counts[g], want.n, `${g} count`);
      }
    });
  }

  it('a class absent from the test set is NaN per class and left out of its group mean', () => {
    // Classes 2 and 3 are both few-shot; class 2 has no test sample, class 3 scores 2/3.
    const rep = accuracyReport([0, 0, 1, 3, 3, 1], [0, 1, 1, 3, 3, 3], 4, [500, 60, 10, 8]);
    assert.ok(Number.isNaN(rep.perClass[2]));
    assert.equal(rep.few, 2 / 3);
    assert.equal(rep.counts.few, 1);
    assert.equal(rep.many, 1);
    assert.equal(rep.medium, 0.5);
    assert.equal(rep.top1, 4 / 6);
  });

  it('custom thresholds move classes between groups', () => {
    const rep = accuracyReport([0, 1], [0, 1], 2, [50, 5], 40, 10);
    assert.deepEqual(rep.counts, { many: 1, medium: 0, few: 1 });
    assert.equal(rep.medium, null);
  });
});

describe('metrics - errors', () => {
  it('rejects mismatched lengths, out-of-range ids, an empty test set and a wrong trainCounts length', () => {
    assert.throws(() => confusionMatrix([0], [0, 1], 2), /predictions \(1\) and labels \(2\)/);
    assert.throws(() => confusionMatrix([0, 2], [0, 1], 2), /predictions\[1\] \(2\)/);
    assert.throws(() => confusionMatrix([0, 1], [0, -1], 2), /labels\[1\] \(-1\)/);
    assert.throws(() => accuracyReport([], [], 2, [1, 1]), CoreValueError);
    assert.throws(() => accuracyReport([0], [0], 2, [1]), /trainCounts has 1 entries/);
  });
});

describe('metrics - topK and argmax', () => {
  /** Reference: stable sort of class ids by descending score, NaN last. */
  function refTop(row: number[], k: number): number[] {
    const key = (v: number) => (Number.isNaN(v) ? -Infinity : v);
    return row
      .map((v, i) => ({ v, i }))
      .sort((a, b) => key(b.v) - key(a.v) || a.i - b.i)
      .slice(0, k)
      .map((x) => x.i);
  }

  it('matches a sort-based reference on seeded rows with ties', () => {
    const rng = Rng.fromSeed('topk');
    const c = 7;
    const rows = 200;
    // Few distinct values force ties.
    const logits = Float32Array.from({ length: rows * c }, () => rng.int(5) - 2);
    for (const k of [1, 3, 7]) {
      const got = topK(logits, c, k);
      assert.equal(got.length, rows);
      got.forEach((t, r) => {
        assert.deepEqual(
          Array.from(t),
          refTop(Array.from(logits.subarray(r * c, (r + 1) * c)), k),
          `row ${r} k ${k}`,
        );
      });
    }
    const am = argmax(logits, c);
    am.forEach((p, r) => {
      assert.equal(p, refTop(Array.from(logits.subarray(r * c, (r + 1) * c)), 1)[0]);
    });
  });

  it('ranks NaN last and keeps the lower class on ties', () => {
    const logits = Float32Array.from([Number.NaN, 1, 1, 0]);
    assert.deepEqual(Array.from(topK(logits, 4, 4)[0]), [1, 2, 3, 0]);
    assert.deepEqual(Array.from(argmax(logits, 4)), [1]);
    assert.deepEqual(Array.from(argmax(Float32Array.from([Number.NaN, Number.NaN]), 2)), [0]);
  });

  it('rejects k > C and a buffer that is not whole rows', () => {
    assert.throws(() => topK(new Float32Array(4), 2, 3), /k \(3\)/);
    assert.throws(() => topK(new Float32Array(5), 2, 1), /logits length \(5\)/);
    assert.throws(() => argmax(new Float32Array(5), 2), /logits length \(5\)/);
  });
});
