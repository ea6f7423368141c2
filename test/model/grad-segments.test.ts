/**
 * Gradients by segment during the backward pass (grad-taps.ts, `StepOptionsBase.segments`): the
 * segments tile the flat gradient from the end down to 0, each is final when reported, and the
 * gradient is bit-identical to the step without segments (BBN and single-branch models).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { createModel } from '../../src/model/factory.ts';
import { forEachBackend, probeBackends } from './backends.ts';
import { randomBatch, TINY_BBN, TINY_SINGLE } from './fixtures.ts';

const backends = await probeBackends(['cpu', 'tensorflow']);

const N = 4;
const U = randomBatch(TINY_BBN, N, 'uniform');
const R = randomBatch(TINY_BBN, N, 'reversed');

/** Bit patterns of a float32 array, for exact comparison. */
const bits = (a: Float32Array): Uint32Array =>
  new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));

forEachBackend(backends, 'gradients by segment', () => {
  it('BBN: segments tile [0, n) from the end, each final when reported, all bit-identical to the plain step', () => {
    const plain = createModel(TINY_BBN, Rng.fromSeed(3));
    const seg = createModel(TINY_BBN, Rng.fromSeed(3));
    try {
      const want = plain.step({ xu: U.x, yu: U.y, xr: R.x, yr: R.y }, 0.7).grads;
      const out = new Float32Array(seg.numParams).fill(Number.NaN);
      const ranges: Array<[number, number]> = [];
      const snapshots: Float32Array[] = [];
      const res = seg.step({ xu: U.x, yu: U.y, xr: R.x, yr: R.y }, 0.7, {
        out,
        segments: {
          elements: 64,
          onSegment: (lo, hi) => {
            ranges.push([lo, hi]);
            snapshots.push(out.slice(lo, hi));
          },
        },
      });
      assert.ok(ranges.length >= 3, `only ${ranges.length} segments`);
      assert.equal(ranges[0][1], seg.numParams);
      assert.equal(ranges[ranges.length - 1][0], 0);
      for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i][1], ranges[i - 1][0]);
      assert.deepEqual(bits(res.grads), bits(want));
      // What a segment held when reported is what the step returns there (final, not partial).
      ranges.forEach(([lo, hi], i) => {
        assert.deepEqual(bits(snapshots[i]), bits(want.subarray(lo, hi)));
      });
      // The classifier (last in the flat order) is in the first segment, before the trunk is done.
      assert.ok(ranges[0][0] <= seg.classifierRange().offset);
      assert.ok(ranges[0][0] > 0);
    } finally {
      plain.dispose();
      seg.dispose();
    }
  });

  it('single-branch and a frozen backbone: bit-identical; the frozen backbone is one segment at the end', () => {
    const plain = createModel(TINY_SINGLE, Rng.fromSeed(4));
    const seg = createModel(TINY_SINGLE, Rng.fromSeed(4));
    try {
      for (const trainable of ['all', 'classifier'] as const) {
        const want = plain.step({ x: U.x, y: U.y }, { trainable }).grads;
        const ranges: Array<[number, number]> = [];
        const got = seg.step(
          { x: U.x, y: U.y },
          { trainable, segments: { elements: 32, onSegment: (lo, hi) => ranges.push([lo, hi]) } },
        ).grads;
        assert.deepEqual(bits(got), bits(want), trainable);
        if (trainable === 'classifier') assert.deepEqual(ranges, [[0, seg.numParams]]);
        else assert.ok(ranges.length >= 2);
      }
    } finally {
      plain.dispose();
      seg.dispose();
    }
  });
});
