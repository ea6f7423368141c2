import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AlphaOptions, alphaAt, divEpoch, isPerBatchAlpha } from '../../src/core/alpha.ts';
import type { AlphaScheduleName } from '../../src/core/config.ts';
import { CoreValueError, Rng } from '../../src/core/rng.ts';
import { closeAll } from './spec-tables.ts';

const D6 = 5.000001e-7;
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const series = (opts: AlphaOptions, epochs: number[]) => epochs.map((e) => alphaAt(e, opts));

// BBN-SPEC §9.6, 10-epoch run (div_epoch = 10), epochs 1..10.
const E10: [AlphaScheduleName, number[]][] = [
  ['parabolic_decay', [1.0, 0.99, 0.96, 0.91, 0.84, 0.75, 0.64, 0.51, 0.36, 0.19]],
  ['linear_decay', [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]],
  [
    'cosine_decay',
    // biome-ignore lint/suspicious/noApproximativeNumericConstant: 0.707107 is the spec's printed value
    [1.0, 0.987688, 0.951057, 0.891007, 0.809017, 0.707107, 0.587785, 0.45399, 0.309017, 0.156434],
  ],
  ['parabolic_increment', [0.0, 0.01, 0.04, 0.09, 0.16, 0.25, 0.36, 0.49, 0.64, 0.81]],
  ['equal', new Array(10).fill(0.5)],
];

describe('alpha - divisor', () => {
  it('is 100 for E=90, 200 for E=180, else E', () => {
    assert.equal(divEpoch(90), 100);
    assert.equal(divEpoch(180), 200);
    assert.equal(divEpoch(200), 200);
    assert.equal(divEpoch(10), 10);
    assert.equal(divEpoch(100), 100);
    assert.throws(() => divEpoch(0), /maxEpoch \(0\)/);
  });
});

describe('alpha - schedules over a 10-epoch run (BBN-SPEC §9.6)', () => {
  for (const [schedule, expected] of E10) {
    it(`${schedule} matches the spec table`, () => {
      closeAll(series({ schedule, maxEpoch: 10 }, range(1, 10)), expected, D6, schedule);
    });
  }

  it('alpha(1) is exactly 1 for parabolic decay (code convention, not the paper T/Tmax)', () => {
    assert.equal(alphaAt(1, { schedule: 'parabolic_decay', maxEpoch: 10 }), 1);
    assert.ok(alphaAt(10, { schedule: 'parabolic_decay', maxEpoch: 10 }) > 0);
  });

  it('separated is 1 up to epoch 120 and 0 after, or up to a given separateEpoch', () => {
    const opts: AlphaOptions = { schedule: 'separated', maxEpoch: 200 };
    assert.deepEqual(series(opts, [1, 119, 120, 121, 200]), [1, 1, 1, 0, 0]);
    assert.deepEqual(series({ ...opts, separateEpoch: 3 }, [3, 4]), [1, 0]);
  });
});

describe('alpha - full runs (BBN-SPEC §2.1, §9.6)', () => {
  const e200: AlphaOptions = { schedule: 'parabolic_decay', maxEpoch: 200 };

  it('E=200 hits the spec points', () => {
    const pts: [number, number][] = [
      [1, 1],
      [2, 0.999975],
      [121, 0.64],
      [141, 0.51],
      [161, 0.36],
      [200, 0.009975],
    ];
    for (const [e, a] of pts) assert.ok(Math.abs(alphaAt(e, e200) - a) <= D6, `alpha(${e})`);
  });

  it('first drops to <= 0.5 at epoch 143 (E=200, E=180) and 72 (E=90)', () => {
    const firstHalf = (opts: AlphaOptions) => range(1, opts.maxEpoch).find((e) => alphaAt(e, opts) <= 0.5);
    assert.equal(firstHalf(e200), 143);
    assert.equal(firstHalf({ schedule: 'parabolic_decay', maxEpoch: 180 }), 143);
    assert.equal(firstHalf({ schedule: 'parabolic_decay', maxEpoch: 90 }), 72);
  });

  it('iNat endpoints stay near 0.2: alpha(180)=0.198975 at E=180, alpha(90)=0.2079 at E=90', () => {
    assert.ok(Math.abs(alphaAt(180, { schedule: 'parabolic_decay', maxEpoch: 180 }) - 0.198975) <= D6);
    assert.ok(Math.abs(alphaAt(90, { schedule: 'parabolic_decay', maxEpoch: 90 }) - 0.2079) <= D6);
  });

  it('every schedule stays in [0,1]; parabolic decay is non-increasing', () => {
    const scheds: AlphaScheduleName[] = [
      'parabolic_decay',
      'linear_decay',
      'cosine_decay',
      'parabolic_increment',
      'equal',
      'separated',
    ];
    for (const schedule of scheds) {
      for (const a of series({ schedule, maxEpoch: 200 }, range(1, 260)))
        assert.ok(a >= 0 && a <= 1, schedule);
    }
    const p = series(e200, range(1, 200));
    for (let i = 1; i < p.length; i++) assert.ok(p[i] <= p[i - 1], `epoch ${i + 1}`);
  });

  it('an explicit divisor replaces auto, and epochs past it hold the end value', () => {
    const opts: AlphaOptions = { schedule: 'parabolic_decay', maxEpoch: 180, divEpoch: 180 };
    assert.ok(Math.abs(alphaAt(91, opts) - 0.75) < 1e-12);
    assert.equal(alphaAt(181, opts), 0);
    assert.ok(alphaAt(400, { schedule: 'cosine_decay', maxEpoch: 10 }) < 1e-15); // cos(π/2) in floats
    assert.equal(alphaAt(400, { schedule: 'parabolic_increment', maxEpoch: 10 }), 1);
  });

  it('rejects a 0 or fractional epoch', () => {
    assert.throws(() => alphaAt(0, e200), /epoch \(0\)/);
    assert.throws(() => alphaAt(1.5, e200), /epoch \(1\.5\)/);
  });
});

describe('alpha - beta schedule (per batch)', () => {
  it('is the only per-batch schedule', () => {
    assert.equal(isPerBatchAlpha('beta'), true);
    for (const s of ['parabolic_decay', 'equal', 'separated', 'cosine_decay'] as const) {
      assert.equal(isPerBatchAlpha(s), false);
    }
  });

  it('draws a fresh value in [0,1] per call, U-shaped for Beta(0.2,0.2), reproducible by seed', () => {
    const opts: AlphaOptions = { schedule: 'beta', maxEpoch: 200 };
    const rng = Rng.fromSeed('beta');
    const n = 20_000;
    const xs = Array.from({ length: n }, () => alphaAt(5, opts, rng));
    for (const x of xs) assert.ok(x >= 0 && x <= 1);
    assert.ok(new Set(xs).size > n / 2, 'values vary per draw');
    const mean = xs.reduce((a, b) => a + b, 0) / n;
    // Var of Beta(a,a) = 1/(4(2a+1)) = 0.178 for a = 0.2.
    assert.ok(Math.abs(mean - 0.5) < 4 * Math.sqrt(1 / (4 * 1.4) / n), `mean ${mean}`);
    const edges = xs.filter((x) => x < 0.1 || x > 0.9).length / n;
    assert.ok(edges > 0.5, `Beta(0.2,0.2) puts most mass near 0 and 1, got ${edges}`);
    const again = Rng.fromSeed('beta');
    assert.equal(alphaAt(5, opts, again), xs[0]);
  });

  it('throws without an rng', () => {
    assert.throws(
      () => alphaAt(1, { schedule: 'beta', maxEpoch: 10 }),
      (e: unknown) => e instanceof CoreValueError && /needs an rng/.test(e.message),
    );
  });
});
