/** Naming stragglers in `bbn status`: a rank computing 1.5x the ranks' median per step, or slower. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { markStragglers, type RankStatus, STRAGGLER_RATIO } from '../../src/orchestration/client.ts';

const rank = (r: number, computeSeconds: number | null): Omit<RankStatus, 'stragglerRatio'> => ({
  rank: r,
  epoch: 1,
  step: 3,
  generation: 0,
  attempt: 1,
  heartbeatAgeSeconds: 0.5,
  lastFailure: null,
  computeSeconds,
  reduceSeconds: 0.1,
});

describe('markStragglers', () => {
  const cases: { name: string; times: (number | null)[]; stragglers: (number | null)[] }[] = [
    { name: 'even ranks: nobody', times: [1, 1.1, 0.9, 1], stragglers: [null, null, null, null] },
    { name: 'one slow rank of four', times: [1, 1, 3, 1], stragglers: [null, null, 3, null] },
    {
      name: 'exactly at the ratio',
      times: [1, STRAGGLER_RATIO, 1],
      stragglers: [null, STRAGGLER_RATIO, null],
    },
    { name: 'one rank alone is never a straggler', times: [5], stragglers: [null] },
    {
      name: 'ranks before their first step are ignored',
      times: [1, null, 2],
      stragglers: [null, null, null],
    },
    {
      name: 'median of an even count',
      times: [1, 1, 2, 4],
      stragglers: [null, null, null, 2.6666666666666665],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const marked = markStragglers(c.times.map((t, r) => rank(r, t)));
      assert.deepEqual(
        marked.map((m) => m.stragglerRatio),
        c.stragglers,
      );
    });
  }
});
