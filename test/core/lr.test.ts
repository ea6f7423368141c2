import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type LrOptions, lrAt } from '../../src/core/lr.ts';

/** Relative closeness. */
function near(actual: number, expected: number, rel: number): void {
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected), `${actual} vs ${expected}`);
}

const CIFAR: LrOptions = {
  name: 'warmup_multistep',
  baseLr: 0.1,
  maxEpoch: 200,
  milestones: [120, 160],
  gamma: 0.01,
  warmupEpochs: 5,
  warmupFactor: 1 / 3,
  etaMin: 1e-4,
};
const INAT: LrOptions = {
  ...CIFAR,
  name: 'multistep',
  baseLr: 0.05,
  maxEpoch: 180,
  gamma: 0.1,
  warmupEpochs: 0,
};

describe('lr - warmup multistep, CIFAR (BBN-SPEC §6, §9.10, torch 1.0.1 convention)', () => {
  it('warms up over epochs 1..5 and reaches 0.1 at epoch 6', () => {
    const expected = [0.033333, 0.046667, 0.06, 0.073333, 0.086667, 0.1];
    // The spec prints 6 decimals.
    expected.forEach((lr, i) => {
      assert.ok(Math.abs(lrAt(i + 1, CIFAR) - lr) <= 5.000001e-7, `epoch ${i + 1}`);
    });
  });

  it('holds 0.1 through epoch 120, 0.001 for 121..160 and 1e-5 for 161..200', () => {
    for (let e = 6; e <= 120; e++) near(lrAt(e, CIFAR), 0.1, 1e-12);
    for (let e = 121; e <= 160; e++) near(lrAt(e, CIFAR), 0.001, 1e-12);
    for (let e = 161; e <= 200; e++) near(lrAt(e, CIFAR), 1e-5, 1e-12);
  });
});

describe('lr - multistep, iNat', () => {
  it('is 0.05 through 120, 0.005 for 121..160 and 0.0005 after', () => {
    near(lrAt(1, INAT), 0.05, 1e-12);
    near(lrAt(120, INAT), 0.05, 1e-12);
    near(lrAt(121, INAT), 0.005, 1e-12);
    near(lrAt(160, INAT), 0.005, 1e-12);
    near(lrAt(161, INAT), 0.0005, 1e-12);
    near(lrAt(180, INAT), 0.0005, 1e-12);
  });

  it('ignores warm-up settings', () => {
    assert.equal(lrAt(1, { ...INAT, warmupEpochs: 5 }), lrAt(1, INAT));
  });
});

describe('lr - cosine', () => {
  const COS: LrOptions = { ...CIFAR, name: 'cosine', maxEpoch: 100 };

  it('starts at the base lr, passes the midpoint halfway and falls monotonically towards eta_min', () => {
    assert.equal(lrAt(1, COS), 0.1);
    near(lrAt(51, COS), (0.1 + 1e-4) / 2, 1e-12);
    near(lrAt(101, COS), 1e-4, 1e-9);
    for (let e = 2; e <= 100; e++) assert.ok(lrAt(e, COS) < lrAt(e - 1, COS));
  });
});

describe('lr - errors', () => {
  it('names the bad field', () => {
    assert.throws(() => lrAt(0, CIFAR), /epoch \(0\)/);
    assert.throws(() => lrAt(1, { ...CIFAR, baseLr: -0.1 }), /baseLr \(-0\.1\)/);
    assert.throws(() => lrAt(1, { ...CIFAR, milestones: [160, 120] }), /milestones \(160,120\)/);
    assert.throws(
      () => lrAt(1, { ...CIFAR, name: 'step' as LrOptions['name'] }),
      /unknown lr schedule \(step\)/,
    );
  });
});
