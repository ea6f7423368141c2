import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  chunkRange,
  chunksInSegment,
  framesPerAllreduce,
  isReduceStep,
  ReceiveCursor,
  recvSegment,
  ringSteps,
  segmentStart,
  sendSegment,
} from '../../src/collective/internal.ts';

describe('ring schedule', () => {
  it('cuts n elements into W segments floor(s*n/W) that tile [0, n)', () => {
    const table: Array<[number, number, number[]]> = [
      [0, 3, [0, 0, 0, 0]],
      [1, 3, [0, 0, 0, 1]],
      [2, 3, [0, 0, 1, 2]],
      [10, 4, [0, 2, 5, 7, 10]],
      [7, 1, [0, 7]],
    ];
    for (const [n, W, starts] of table) {
      assert.deepEqual(
        starts.map((_, s) => segmentStart(n, W, s)),
        starts,
        `n=${n} W=${W}`,
      );
    }
  });

  it('chunks every segment into ranges of at most chunkElements that cover it exactly once', () => {
    for (const [n, W, ce] of [
      [1009, 3, 7],
      [10, 4, 1],
      [3, 5, 2],
      [1_000_000, 5, 262_144],
    ]) {
      const seen = new Uint8Array(n);
      for (let s = 0; s < W; s++) {
        for (let c = 0; c < chunksInSegment(n, W, s, ce); c++) {
          const r = chunkRange(n, W, s, c, ce);
          assert.ok(r.length >= 1 && r.length <= ce, `n=${n} W=${W} s=${s} c=${c} length ${r.length}`);
          for (let i = r.offset; i < r.offset + r.length; i++) seen[i]++;
        }
      }
      assert.ok(
        seen.every((v) => v === 1),
        `n=${n} W=${W} ce=${ce}: some element not covered exactly once`,
      );
    }
  });

  it('cuts a piece at a span along the segments of the logical array: each element keeps its segment', () => {
    for (const [total, W, ce] of [
      [1009, 3, 7],
      [50_021, 4, 1024],
      [10, 4, 3],
    ]) {
      const owner = new Int32Array(total);
      for (let s = 0; s < W; s++) owner.fill(s, segmentStart(total, W, s), segmentStart(total, W, s + 1));
      for (const [lo, hi] of [
        [0, total],
        [0, 1],
        [total - 1, total],
        [Math.floor(total / 3), Math.floor((2 * total) / 3)],
        [5, 5],
      ]) {
        const span = { offset: lo, total };
        const seen = new Int32Array(hi - lo).fill(-1);
        for (let s = 0; s < W; s++) {
          for (let c = 0; c < chunksInSegment(hi - lo, W, s, ce, span); c++) {
            const r = chunkRange(hi - lo, W, s, c, ce, span);
            assert.ok(r.length >= 1 && r.length <= ce);
            for (let i = r.offset; i < r.offset + r.length; i++) {
              assert.equal(seen[i], -1, `element ${lo + i} twice`);
              seen[i] = s;
            }
          }
        }
        for (let i = 0; i < hi - lo; i++) {
          assert.equal(seen[i], owner[lo + i], `total=${total} W=${W} [${lo}, ${hi}): element ${lo + i}`);
        }
      }
    }
  });

  it('sends at step t what the downstream neighbour receives at step t', () => {
    for (let W = 2; W <= 6; W++) {
      for (let r = 0; r < W; r++) {
        for (let t = 0; t < ringSteps(W); t++) {
          assert.equal(recvSegment((r + 1) % W, t, W), sendSegment(r, t, W));
        }
      }
    }
  });

  it('lets the receive cursor walk (t, chunk) in order, skipping empty segments', () => {
    const [n, W, ce, rank] = [11, 3, 2, 1];
    const walked: string[] = [];
    const cursor = new ReceiveCursor(n, W, rank, ce);
    while (!cursor.done) {
      const { t, chunk } = cursor.next;
      walked.push(`${t}/${chunk}@${cursor.range.offset}+${cursor.range.length}`);
      cursor.advance();
    }
    const expected: string[] = [];
    for (let t = 0; t < ringSteps(W); t++) {
      const s = recvSegment(rank, t, W);
      for (let c = 0; c < chunksInSegment(n, W, s, ce); c++) {
        const r = chunkRange(n, W, s, c, ce);
        expected.push(`${t}/${c}@${r.offset}+${r.length}`);
      }
    }
    assert.deepEqual(walked, expected);
    assert.equal(walked.length, framesPerAllreduce(n, W, rank, ce));
    assert.ok(new ReceiveCursor(0, 4, 0, 8).done, 'an empty array expects no frame');
    assert.ok(new ReceiveCursor(2, 4, 3, 8).done === false);
  });

  it('reduces segment s in rank order s, s+1, ..., s+W-1 and then only copies it', () => {
    // Simulate the schedule symbolically: each rank holds, per segment, the list of ranks summed.
    for (let W = 1; W <= 5; W++) {
      const held = Array.from({ length: W }, (_, r) => Array.from({ length: W }, () => [r]));
      for (let t = 0; t < ringSteps(W); t++) {
        const sent = held.map((segs, r) => [...segs[sendSegment(r, t, W)]]);
        for (let r = 0; r < W; r++) {
          const from = (r + W - 1) % W;
          const s = recvSegment(r, t, W);
          held[r][s] = isReduceStep(t, W) ? [...sent[from], r] : sent[from];
        }
      }
      for (let r = 0; r < W; r++) {
        for (let s = 0; s < W; s++) {
          const order = Array.from({ length: W }, (_, k) => (s + k) % W);
          assert.deepEqual(held[r][s], order, `W=${W} rank ${r} segment ${s}`);
        }
      }
    }
  });
});
