import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CoreValueError, Rng } from '../../src/core/rng.ts';
import {
  ClassIndex,
  classProbabilities,
  createRebalanceSampler,
  cumulativeWeights,
  inverseCdfPick,
  reversedWeights,
  uniformEpochOrder,
} from '../../src/core/samplers.ts';
import { closeAll, LT_TABLES, labelsFor } from './spec-tables.ts';

// BBN-SPEC §9.1, to 6 decimals.
const IR100 = LT_TABLES[0].counts;
const IR50 = LT_TABLES[1].counts;
const W_IR100 = [1, 1.668335, 2.783964, 4.642526, 7.751938, 12.919897, 21.551724, 35.971223, 60.240964, 100];
const S_IR100 = 248.530571;
const P_IR100 = [
  0.004024, 0.006713, 0.011202, 0.01868, 0.031191, 0.051985, 0.086717, 0.144736, 0.242389, 0.402365,
];
const CUM_IR100 = [
  1, 2.668335, 5.452299, 10.094825, 17.846763, 30.76666, 52.318384, 88.289607, 148.530571, 248.530571,
];
const P_IR50 = [
  0.007134, 0.011019, 0.017018, 0.026286, 0.040626, 0.062799, 0.096928, 0.149872, 0.231621, 0.356696,
];
const S_IR50 = 140.175205;
/** Half a unit in the 6th decimal, plus float slack. */
const D6 = 5.000001e-7;

const DRAWS = 1_000_000;

/** Asserts each empirical frequency lies within 4σ of its probability. */
function within4Sigma(hits: readonly number[], p: readonly number[], n: number, what: string): void {
  p.forEach((pi, i) => {
    const sigma = Math.sqrt((pi * (1 - pi)) / n);
    const f = hits[i] / n;
    assert.ok(
      Math.abs(f - pi) <= 4 * sigma,
      `${what}: class ${i} frequency ${f} vs ${pi} (4σ = ${4 * sigma})`,
    );
  });
}

describe('samplers - reversed weights and probabilities (BBN-SPEC §9.1)', () => {
  it('C10-IR100: w, S, P and cumulative sums match the spec to 6 decimals', () => {
    const w = reversedWeights(IR100);
    closeAll(w, W_IR100, D6, 'w');
    const { cumulative, total } = cumulativeWeights(w);
    assert.ok(Math.abs(total - S_IR100) <= D6);
    closeAll(cumulative, CUM_IR100, D6, 'cumulative');
    const p = classProbabilities('reversed', IR100);
    closeAll(p, P_IR100, D6, 'P');
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  });

  it('C10-IR50: P and S match the spec to 6 decimals', () => {
    const { total } = cumulativeWeights(reversedWeights(IR50));
    assert.ok(Math.abs(total - S_IR50) <= D6);
    closeAll(classProbabilities('reversed', IR50), P_IR50, D6, 'P');
  });

  it('the last cumulative sum equals S bit for bit, whatever the weights', () => {
    const rng = Rng.fromSeed('weights');
    for (let trial = 0; trial < 200; trial++) {
      const counts = Array.from({ length: 1 + rng.int(300) }, () => 1 + rng.int(5000));
      const { cumulative, total } = cumulativeWeights(reversedWeights(counts));
      assert.equal(cumulative[cumulative.length - 1], total);
    }
  });

  it('balanced gives 1/C and uniform gives N_c/N', () => {
    closeAll(classProbabilities('balanced', IR100), new Array(10).fill(0.1), 1e-15, 'balanced');
    closeAll(classProbabilities('uniform', [1, 3]), [0.25, 0.75], 1e-15, 'uniform');
  });

  it('rejects an empty class and an empty count list', () => {
    assert.throws(() => reversedWeights([5, 0, 3]), /counts\[1\] \(0\)/);
    assert.throws(() => reversedWeights([]), CoreValueError);
    assert.throws(() => classProbabilities('reversed', [5, 0]), /counts\[1\] \(0\)/);
  });
});

describe('samplers - inverse CDF (BBN-SPEC §9.2)', () => {
  const { cumulative, total } = cumulativeWeights(reversedWeights(IR100));
  const TABLE: [number, number][] = [
    [0.0, 0],
    [0.004, 0],
    [0.0041, 1],
    [0.01, 1],
    [0.1, 5],
    [0.3, 7],
    [0.5, 8],
    [0.6, 9],
    [0.999999, 9],
  ];
  for (const [u, cls] of TABLE) {
    it(`u = ${u} picks class ${cls}`, () => {
      assert.equal(inverseCdfPick(cumulative, total, u), cls);
    });
  }

  it('agrees with the official linear walk for many u, and falls back to the last class', () => {
    const walk = (u: number) => {
      const r = u * total;
      for (let i = 0; i < cumulative.length; i++) if (r <= cumulative[i]) return i;
      return cumulative.length - 1;
    };
    const rng = Rng.fromSeed('cdf');
    for (let i = 0; i < 20_000; i++) {
      const u = rng.random();
      assert.equal(inverseCdfPick(cumulative, total, u), walk(u));
    }
    for (const c of cumulative) assert.equal(inverseCdfPick(cumulative, total, c / total), walk(c / total));
    assert.equal(inverseCdfPick(cumulative, total, 1), 9);
    assert.equal(inverseCdfPick(cumulative, total, 1.5), 9);
    assert.equal(inverseCdfPick([2], 2, 0.7), 0);
  });
});

describe('samplers - class index', () => {
  it('lists each class positions in ascending order', () => {
    const index = new ClassIndex([2, 0, 2, 1, 0], 3);
    assert.equal(index.numClasses, 3);
    assert.equal(index.size, 5);
    assert.deepEqual(index.counts, [2, 1, 2]);
    assert.deepEqual(Array.from(index.indicesOf(0)), [1, 4]);
    assert.deepEqual(Array.from(index.indicesOf(2)), [0, 2]);
    assert.throws(() => index.indicesOf(3), /class \(3\)/);
  });

  it('names an empty class and an out-of-range label', () => {
    assert.throws(
      () => new ClassIndex([0, 0, 2], 3),
      (e: unknown) => e instanceof CoreValueError && /class 1 has no images/.test(e.message),
    );
    assert.throws(() => new ClassIndex([0, 1, 5], 3), /labels\[2\] \(5\)/);
    assert.throws(() => new ClassIndex([0, -1], 3), /labels\[1\] \(-1\)/);
  });
});

describe('samplers - rebalance samplers, 10^6 draws', () => {
  const labels = labelsFor(IR100);
  const index = new ClassIndex(labels, 10);

  function draw(kind: 'reversed' | 'balanced' | 'uniform', seed: string): Int32Array {
    const sampler = createRebalanceSampler(kind, index);
    const rng = Rng.fromSeed(seed);
    const out = new Int32Array(DRAWS);
    for (let i = 0; i < DRAWS; i++) out[i] = sampler.draw(rng);
    return out;
  }
  function classHits(positions: Int32Array): number[] {
    const hits = new Array(10).fill(0);
    for (const p of positions) hits[labels[p]]++;
    return hits;
  }

  it('reversed: class frequencies within 4σ of the spec P, and each image of a class equally likely', () => {
    const positions = draw('reversed', 'reversed');
    within4Sigma(classHits(positions), P_IR100, DRAWS, 'reversed');
    // Within class 9 (50 images): every image within 4σ of 1/50 of that class's draws.
    const tail = index.indicesOf(9);
    const perImage = new Map<number, number>();
    for (const p of positions) if (labels[p] === 9) perImage.set(p, (perImage.get(p) ?? 0) + 1);
    const nTail = [...perImage.values()].reduce((a, b) => a + b, 0);
    assert.equal(perImage.size, 50);
    for (const p of tail) {
      const h = perImage.get(p) ?? 0;
      const sigma = Math.sqrt(nTail * (1 / 50) * (49 / 50));
      assert.ok(Math.abs(h - nTail / 50) <= 4 * sigma, `image ${p}: ${h} hits of ${nTail}`);
    }
  });

  it('reversed: draws within a class are with replacement', () => {
    const sampler = createRebalanceSampler('reversed', index);
    const rng = Rng.fromSeed('replacement');
    const firstTail: number[] = [];
    while (firstTail.length < 50) {
      const p = sampler.draw(rng);
      if (labels[p] === 9) firstTail.push(p);
    }
    // Without replacement the first 50 draws of a 50-image class would all differ; with
    // replacement that has probability 50!/50^50 ≈ 3e-21.
    assert.ok(new Set(firstTail).size < 50);
  });

  it('balanced: every class within 4σ of 1/C', () => {
    within4Sigma(classHits(draw('balanced', 'balanced')), new Array(10).fill(0.1), DRAWS, 'balanced');
  });

  it('uniform: class frequencies within 4σ of N_c/N, images drawn with replacement over all N', () => {
    const positions = draw('uniform', 'uniform');
    within4Sigma(
      classHits(positions),
      IR100.map((n) => n / labels.length),
      DRAWS,
      'uniform',
    );
    const perImage = new Int32Array(labels.length);
    for (const p of positions) perImage[p]++;
    // Chi-square over N cells: mean N−1, sd sqrt(2(N−1)).
    const expect = DRAWS / labels.length;
    let chi2 = 0;
    for (const h of perImage) chi2 += (h - expect) ** 2 / expect;
    const df = labels.length - 1;
    assert.ok(Math.abs(chi2 - df) <= 4 * Math.sqrt(2 * df), `chi2 ${chi2} for df ${df}`);
  });

  it('a class with a single image always returns that image', () => {
    const one = new ClassIndex([0, 0, 1, 0], 2);
    for (const kind of ['reversed', 'balanced'] as const) {
      const sampler = createRebalanceSampler(kind, one);
      const rng = Rng.fromSeed(kind);
      let seen = 0;
      for (let i = 0; i < 2000; i++) {
        const p = sampler.draw(rng);
        if ([0, 0, 1, 0][p] === 1) {
          assert.equal(p, 2);
          seen++;
        }
      }
      assert.ok(seen > 100, `${kind} drew the single-image class ${seen} times`);
    }
  });

  it('the same seed gives the same draws', () => {
    const a = createRebalanceSampler('reversed', index);
    const r1 = Rng.fromSeed(5);
    const r2 = Rng.fromSeed(5);
    for (let i = 0; i < 1000; i++) assert.equal(a.draw(r1), a.draw(r2));
  });
});

describe('samplers - uniform epoch order (BBN-SPEC §4.1, §9.4)', () => {
  it('C10-IR100 at B=128: 96 iterations of distinct in-range positions', () => {
    const order = uniformEpochOrder(12406, 128, Rng.fromSeed(1));
    assert.equal(order.length, 96 * 128);
    assert.equal(order.length / 128, 96);
    assert.equal(new Set(order).size, order.length);
    for (const p of order) assert.ok(p >= 0 && p < 12406);
  });

  it('is a prefix of the seeded permutation and differs across seeds', () => {
    const a = uniformEpochOrder(1000, 64, Rng.fromSeed(2));
    assert.deepEqual(a, Rng.fromSeed(2).permutation(1000).slice(0, 960));
    assert.notDeepEqual(a, uniformEpochOrder(1000, 64, Rng.fromSeed(3)));
  });

  it('keeps the full permutation when B divides N, and rejects B > N', () => {
    const full = uniformEpochOrder(256, 128, Rng.fromSeed(4));
    assert.deepEqual(
      [...full].sort((x, y) => x - y),
      Array.from({ length: 256 }, (_, i) => i),
    );
    assert.equal(uniformEpochOrder(5, 5, Rng.fromSeed(0)).length, 5);
    assert.throws(() => uniformEpochOrder(100, 128, Rng.fromSeed(0)), /batchSize \(128\) exceeds.*\(100\)/);
    assert.throws(() => uniformEpochOrder(100, 0, Rng.fromSeed(0)), /batchSize \(0\)/);
  });
});
