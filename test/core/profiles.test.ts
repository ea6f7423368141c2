import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { powCorrectlyRounded } from '../../src/core/exact-pow.ts';
import {
  classCounts,
  exponentialCounts,
  imbalanceRatioOf,
  shotGroups,
  stepCounts,
  subsampleLongTail,
} from '../../src/core/profiles.ts';
import { CoreValueError, Rng } from '../../src/core/rng.ts';
import { uniformEpochOrder } from '../../src/core/samplers.ts';
import { C100_SPEC_ENDS, LT_TABLES, labelsFor } from './spec-tables.ts';

describe('profiles - exponential long-tail counts (BBN-SPEC §5.1)', () => {
  for (const t of LT_TABLES) {
    it(`${t.name}: counts, total ${t.total} and ${t.itersB128} iterations at B=128 match the spec`, () => {
      const counts = exponentialCounts(t.nMax, t.numClasses, t.imbalanceRatio);
      assert.deepEqual(counts, t.counts);
      assert.equal(
        counts.reduce((a, b) => a + b, 0),
        t.total,
      );
      const order = uniformEpochOrder(t.total, 128, Rng.fromSeed(0));
      assert.equal(order.length / 128, t.itersB128);
    });
  }

  it('CIFAR-100 heads and tails equal the literal ends printed in the spec', () => {
    for (const [ir, ends] of Object.entries(C100_SPEC_ENDS)) {
      const counts = exponentialCounts(500, 100, Number(ir));
      assert.deepEqual(counts.slice(0, ends.head.length), ends.head, `IR ${ir} head`);
      assert.deepEqual(counts.slice(-ends.tail.length), ends.tail, `IR ${ir} tail`);
    }
  });

  it('one class keeps nMax, and IR 1 keeps every class at nMax', () => {
    assert.deepEqual(exponentialCounts(5000, 1, 100), [5000]);
    assert.deepEqual(exponentialCounts(500, 4, 1), [500, 500, 500, 500]);
  });

  it('counts are non-increasing and end at trunc(nMax/IR)', () => {
    const counts = exponentialCounts(6000, 10, 100);
    for (let i = 1; i < counts.length; i++) assert.ok(counts[i] <= counts[i - 1]);
    assert.equal(counts[9], 60);
  });

  it('rejects a profile that would leave a class empty, naming the class', () => {
    assert.throws(
      () => exponentialCounts(99, 10, 100),
      (e: unknown) => {
        return e instanceof CoreValueError && /class 9 with 0 images/.test(e.message);
      },
    );
  });

  it('rejects bad arguments with the argument name', () => {
    assert.throws(() => exponentialCounts(5000, 10, 0.5), /imbalanceRatio \(0\.5\)/);
    assert.throws(() => exponentialCounts(5000, 0, 10), /numClasses \(0\)/);
    assert.throws(() => exponentialCounts(-1, 10, 10), /nMax \(-1\)/);
  });
});

describe('profiles - correctly rounded power', () => {
  // Python 3 (glibc pow) results for powers where V8's `**` is one ulp off.
  const PYTHON: [number, number, number][] = [
    [0.02, 0.1111111111111111, 0.6474788028695254],
    [0.01, 0.050505050505050504, 0.7924828983539173],
    [0.01, 0.21212121212121213, 0.3764935806792468],
    [0.01, 0.9696969696969697, 0.011497569953977356],
    [0.02, 0.04040404040404041, 0.8537972414495888],
    [0.02, 0.7575757575757576, 0.05162992710363173],
    [0.1, 0.10101010101010101, 0.7924828983539173],
    [0.1, 0.8383838383838383, 0.14508287784959398],
  ];
  for (const [x, y, expected] of PYTHON) {
    it(`${x} ** ${y} equals Python's ${expected} bit for bit`, () => {
      assert.equal(powCorrectlyRounded(x, y), expected);
    });
  }

  it('agrees with Math.pow to within one ulp on a seeded sweep, and exactly on trivial cases', () => {
    const rng = Rng.fromSeed('pow');
    for (let i = 0; i < 500; i++) {
      const x = rng.uniform(1e-3, 40);
      const y = rng.uniform(-8, 8);
      const a = powCorrectlyRounded(x, y);
      const b = x ** y;
      assert.ok(Math.abs(a - b) <= 2.3e-16 * Math.abs(b), `${x} ** ${y}: ${a} vs ${b}`);
    }
    assert.equal(powCorrectlyRounded(0.01, 0), 1);
    assert.equal(powCorrectlyRounded(1, 0.3), 1);
    assert.equal(powCorrectlyRounded(0.01, 1), 0.01);
    assert.equal(powCorrectlyRounded(2, 10), 1024);
    assert.equal(powCorrectlyRounded(4, 0.5), 2);
    assert.equal(powCorrectlyRounded(0.01, 2), 0.01 * 0.01);
  });

  it('rejects a non-positive base', () => {
    assert.throws(() => powCorrectlyRounded(0, 0.5), CoreValueError);
    assert.throws(() => powCorrectlyRounded(-2, 0.5), CoreValueError);
  });
});

describe('profiles - step counts', () => {
  it('splits head and tail halves like LDAM', () => {
    assert.deepEqual(stepCounts(5000, 10, 100), [5000, 5000, 5000, 5000, 5000, 50, 50, 50, 50, 50]);
    assert.deepEqual(stepCounts(500, 5, 10), [500, 500, 50, 50, 50]);
  });

  it('honours minorFraction and always keeps one head class', () => {
    assert.deepEqual(stepCounts(100, 10, 10, 0.3), [100, 100, 100, 100, 100, 100, 100, 10, 10, 10]);
    assert.equal(stepCounts(100, 100, 10, 0.29).filter((n) => n === 10).length, 29);
    assert.deepEqual(stepCounts(100, 2, 10, 0.9), [100, 10]);
    assert.deepEqual(stepCounts(100, 1, 10), [100]);
  });

  it('rejects a fraction outside (0, 1) and an empty tail class', () => {
    assert.throws(() => stepCounts(100, 10, 10, 1), /minorFraction \(1\)/);
    assert.throws(() => stepCounts(50, 10, 100), /class 5 with 0 images/);
  });
});

describe('profiles - class counts and imbalance ratio', () => {
  it('counts labels per class, including classes with no label', () => {
    assert.deepEqual(classCounts([0, 2, 2, 1, 2], 4), [1, 1, 3, 0]);
    assert.deepEqual(classCounts(new Int32Array(0), 2), [0, 0]);
  });

  it('rejects a label outside [0, numClasses) naming its position', () => {
    assert.throws(() => classCounts([0, 3], 3), /labels\[1\] \(3\)/);
    assert.throws(() => classCounts([0.5], 3), /labels\[0\] \(0\.5\)/);
  });

  it('imbalance ratio is max/min of the spec tables', () => {
    assert.equal(imbalanceRatioOf(LT_TABLES[0].counts), 100);
    assert.equal(imbalanceRatioOf(LT_TABLES[1].counts), 50);
    assert.equal(imbalanceRatioOf([7]), 1);
    assert.throws(() => imbalanceRatioOf([]), CoreValueError);
    assert.throws(() => imbalanceRatioOf([5, 0]), /counts\[1\] \(0\)/);
  });
});

describe('profiles - long-tail subsampling', () => {
  const balanced = labelsFor(new Array(10).fill(5000));
  const target = LT_TABLES[0].counts;

  it('keeps exactly the requested count per class, as sorted unique positions', () => {
    const kept = subsampleLongTail(balanced, target, Rng.fromSeed(0));
    assert.equal(kept.length, 12406);
    for (let i = 1; i < kept.length; i++) assert.ok(kept[i] > kept[i - 1], 'ascending and unique');
    assert.deepEqual(
      classCounts(
        Array.from(kept, (i) => balanced[i]),
        10,
      ),
      target,
    );
  });

  it('is fixed by the seed and changes with it', () => {
    const a = subsampleLongTail(balanced, target, Rng.fromSeed(0));
    const b = subsampleLongTail(balanced, target, Rng.fromSeed(0));
    const c = subsampleLongTail(balanced, target, Rng.fromSeed(1));
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  it('draws a class subset spread over the whole class, not its first images', () => {
    const kept = subsampleLongTail(balanced, target, Rng.fromSeed(3));
    const tail = Array.from(kept).filter((i) => balanced[i] === 9);
    assert.equal(tail.length, 50);
    // Class 9 positions span the whole array; a prefix pick would end before position 10*50.
    assert.ok(Math.max(...tail) > balanced.length / 2);
  });

  it('names the class that has fewer images than requested', () => {
    assert.throws(
      () => subsampleLongTail([0, 0, 1], [1, 2], Rng.fromSeed(0)),
      /class 1 has 1 images but counts\[1\] asks for 2/,
    );
  });
});

describe('profiles - shot groups', () => {
  it('many is > 100, few is < 20, the rest medium (boundaries included)', () => {
    assert.deepEqual(shotGroups([101, 100, 20, 19, 5000, 1]), [
      'many',
      'medium',
      'medium',
      'few',
      'many',
      'few',
    ]);
  });

  it('takes custom thresholds and rejects few > many', () => {
    assert.deepEqual(shotGroups([11, 10, 5, 4], 10, 5), ['many', 'medium', 'medium', 'few']);
    assert.throws(() => shotGroups([1], 10, 20), /fewThreshold \(20\)/);
  });

  it('groups CIFAR-100-IR100 into 35 many, 35 medium and 30 few classes', () => {
    const g = shotGroups(LT_TABLES[3].counts);
    assert.equal(g.filter((x) => x === 'many').length, 35);
    assert.equal(g.filter((x) => x === 'medium').length, 35);
    assert.equal(g.filter((x) => x === 'few').length, 30);
  });
});
