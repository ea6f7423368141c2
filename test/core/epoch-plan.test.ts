import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type EpochPlanInput,
  planDigest,
  planEpoch,
  shardOf,
  shardRange,
} from '../../src/core/epoch-plan.ts';
import { CoreValueError } from '../../src/core/rng.ts';
import { LT_TABLES, labelsFor } from './spec-tables.ts';

const IR100 = LT_TABLES[0].counts;
const labels = labelsFor(IR100);
const input: EpochPlanInput = {
  seed: 7,
  epoch: 1,
  labels,
  numClasses: 10,
  globalBatch: 128,
  rebalance: 'reversed',
};
// BBN-SPEC §9.1, class 9 of C10-IR100.
const P_TAIL = 0.402365;

describe('epoch plan - contents', () => {
  const plan = planEpoch(input);

  it('C10-IR100 at B=128 has 96 steps of distinct uniform positions and paired reversed draws', () => {
    assert.equal(plan.steps, 96);
    assert.equal(plan.globalBatch, 128);
    assert.equal(plan.epoch, 1);
    assert.equal(plan.uniform.length, 96 * 128);
    assert.equal(plan.reversed.length, 96 * 128);
    assert.equal(new Set(plan.uniform).size, plan.uniform.length);
    for (const p of plan.reversed) assert.ok(p >= 0 && p < labels.length);
  });

  it('reversed draws favour the tail: class 9 share within 4σ of its reversed probability', () => {
    const n = plan.reversed.length;
    const tail = Array.from(plan.reversed).filter((p) => labels[p] === 9).length;
    const sigma = Math.sqrt((P_TAIL * (1 - P_TAIL)) / n);
    assert.ok(Math.abs(tail / n - P_TAIL) <= 4 * sigma, `tail share ${tail / n}`);
  });

  it('rebalance none leaves reversed empty and keeps the same uniform order', () => {
    const none = planEpoch({ ...input, rebalance: 'none' });
    assert.equal(none.reversed.length, 0);
    assert.deepEqual(none.uniform, plan.uniform);
  });

  it('balanced and uniform rebalance kinds draw from their own distributions', () => {
    const bal = planEpoch({ ...input, rebalance: 'balanced' });
    const share = Array.from(bal.reversed).filter((p) => labels[p] === 9).length / bal.reversed.length;
    assert.ok(Math.abs(share - 0.1) <= 4 * Math.sqrt(0.09 / bal.reversed.length));
    const uni = planEpoch({ ...input, rebalance: 'uniform' });
    const head = Array.from(uni.reversed).filter((p) => labels[p] === 0).length / uni.reversed.length;
    const p0 = 5000 / 12406;
    assert.ok(Math.abs(head - p0) <= 4 * Math.sqrt((p0 * (1 - p0)) / uni.reversed.length));
  });
});

describe('epoch plan - determinism', () => {
  it('the same inputs give the same plan and digest', () => {
    const a = planEpoch(input);
    const b = planEpoch({ ...input, labels: Int32Array.from(labels) });
    assert.deepEqual(a, b);
    assert.equal(planDigest(a), planDigest(b));
    assert.match(planDigest(a), /^[0-9a-f]{16}$/);
  });

  it('differs between epochs and between seeds', () => {
    const a = planEpoch(input);
    for (const other of [planEpoch({ ...input, epoch: 2 }), planEpoch({ ...input, seed: 8 })]) {
      assert.notDeepEqual(other.uniform, a.uniform);
      assert.notDeepEqual(other.reversed, a.reversed);
      assert.notEqual(planDigest(other), planDigest(a));
    }
  });

  it('the digest changes when a single index changes', () => {
    const a = planEpoch(input);
    const b = { ...a, reversed: Int32Array.from(a.reversed) };
    b.reversed[500] = (b.reversed[500] + 1) % labels.length;
    assert.notEqual(planDigest(b), planDigest(a));
    const c = { ...a, uniform: Int32Array.from(a.uniform) };
    [c.uniform[0], c.uniform[1]] = [c.uniform[1], c.uniform[0]];
    assert.notEqual(planDigest(c), planDigest(a));
  });
});

describe('epoch plan - sharding', () => {
  it('concatenating the shards of W = 1, 2, 3, 5 reproduces every global batch', () => {
    const plan = planEpoch(input);
    for (const w of [1, 2, 3, 5]) {
      for (let step = 0; step < plan.steps; step++) {
        const u: number[] = [];
        const r: number[] = [];
        for (let rank = 0; rank < w; rank++) {
          const s = shardOf(plan, step, rank, w);
          assert.equal(s.rank, rank);
          assert.equal(s.worldSize, w);
          assert.equal(s.step, step);
          assert.equal(s.offset, u.length);
          assert.equal(s.uniform.length, s.reversed.length);
          u.push(...s.uniform);
          r.push(...s.reversed);
        }
        const from = step * 128;
        assert.deepEqual(u, Array.from(plan.uniform.subarray(from, from + 128)), `W=${w} step ${step}`);
        assert.deepEqual(r, Array.from(plan.reversed.subarray(from, from + 128)), `W=${w} step ${step}`);
      }
    }
  });

  it('shards are copies, so transferring or editing one leaves the plan intact', () => {
    const plan = planEpoch(input);
    const before = plan.uniform[0];
    const s = shardOf(plan, 0, 0, 2);
    s.uniform[0] = -1;
    assert.equal(plan.uniform[0], before);
  });

  it('a plan without a rebalance sampler gives empty reversed shards', () => {
    const s = shardOf(planEpoch({ ...input, rebalance: 'none' }), 3, 1, 4);
    assert.equal(s.reversed.length, 0);
    assert.equal(s.uniform.length, 32);
  });

  it('shardRange splits contiguously, remainder rows to the lowest ranks', () => {
    const table: [number, number, { offset: number; size: number }[]][] = [
      [
        10,
        3,
        [
          { offset: 0, size: 4 },
          { offset: 4, size: 3 },
          { offset: 7, size: 3 },
        ],
      ],
      [
        128,
        5,
        [
          { offset: 0, size: 26 },
          { offset: 26, size: 26 },
          { offset: 52, size: 26 },
          { offset: 78, size: 25 },
          { offset: 103, size: 25 },
        ],
      ],
      [128, 4, [0, 32, 64, 96].map((offset) => ({ offset, size: 32 }))],
      [3, 3, [0, 1, 2].map((offset) => ({ offset, size: 1 }))],
      [7, 1, [{ offset: 0, size: 7 }]],
    ];
    for (const [b, w, expected] of table) {
      const got = expected.map((_, rank) => shardRange(b, rank, w));
      assert.deepEqual(got, expected, `B=${b} W=${w}`);
    }
  });

  it('rejects W > B, a rank out of range and a step past the epoch', () => {
    assert.throws(() => shardRange(4, 0, 5), /worldSize \(5\) exceeds globalBatch \(4\)/);
    assert.throws(() => shardRange(8, 2, 2), /rank \(2\)/);
    assert.throws(() => shardRange(8, -1, 2), /rank \(-1\)/);
    assert.throws(() => shardRange(8, 0, 0), /worldSize \(0\)/);
    const plan = planEpoch(input);
    assert.throws(() => shardOf(plan, 96, 0, 1), /step \(96\) must be < the epoch's steps \(96\)/);
    assert.throws(() => shardOf(plan, -1, 0, 1), /step \(-1\)/);
  });
});

describe('epoch plan - errors', () => {
  it('names an empty class, B > N and a bad label', () => {
    assert.throws(
      () => planEpoch({ ...input, labels: [0, 0, 2, 2], numClasses: 3, globalBatch: 2 }),
      (e: unknown) => e instanceof CoreValueError && /class 1 has no images/.test(e.message),
    );
    assert.throws(() => planEpoch({ ...input, globalBatch: 20_000 }), /batchSize \(20000\) exceeds/);
    assert.throws(
      () => planEpoch({ ...input, labels: [0, 1, 9], numClasses: 3, globalBatch: 1, rebalance: 'none' }),
      /labels\[2\] \(9\)/,
    );
    assert.throws(() => planEpoch({ ...input, epoch: 0 }), /epoch \(0\)/);
  });
});
