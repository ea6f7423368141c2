/**
 * Keepalive through a blocked main thread, on the shipped settings: no keepalive or timeout option
 * anywhere, so the peer servers and the rings use the collective's defaults (60 s keepalive on
 * both ends of every edge, 60 s progress timeout). A rank computes on its main thread, whose event
 * loop then answers no HTTP/2 ping; before the fix the peer server pinged every 5 s and a step of
 * 5-10 s dropped the ring depending on where the pings fell.
 *
 * Why the outcome does not depend on timing (the timers that can fire while rank 1 blocks b = 30 s
 * from time B):
 * - a neighbour's keepalive ping to rank 1 (client or server side) sent at P >= B is answered when
 *   rank 1 wakes, at B + b, and fails only at P + 60 s > B + b: it cannot fail;
 * - rank 1's own pings: one sent at P < B - (60 s - b) was answered by its neighbour long before B;
 *   one sent later times out at P + 60 s > B + b, after rank 1 has read the answer;
 * - the progress timeouts (60 s) of every rank see at most b = 30 s without a frame.
 * So the ring survives with a 30 s margin. The control case reverses the first point: with a 2 s
 * keepalive a neighbour's ping is sent within 2 s of B and fails within 4 s of B, while rank 1
 * still blocks (10 s), so the ring breaks every time; it shows the first test can see the failure.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Outcome, RingCluster, within } from './ring-cluster.ts';
import { firstBitDifference, rankData, ringOrderSum } from './ring-data.ts';

const BLOCK_MS = 30_000;
/** Bound on steps that are not under test (start-up, healthy allreduces) on a loaded machine. */
const SLOW_MS = 20_000;
const N = 300_000;
const W = 3;

function assertExact(outcomes: Outcome[], seed: string, log: (rank: number) => string): void {
  const exact = ringOrderSum(Array.from({ length: W }, (_, r) => rankData(seed, r, N)));
  for (const o of outcomes) {
    assert.ok(o.ok && o.data, `${seed} rank ${o.rank}: ${JSON.stringify(o)}\n${log(o.rank)}`);
    assert.equal(firstBitDifference(o.data, exact), -1, `${seed} rank ${o.rank}`);
  }
}

describe('ring keepalive - a rank whose main thread blocks', () => {
  it(`keeps the ring through ${BLOCK_MS / 1000} s blocks mid-allreduce and between allreduces (shipped settings); sums exact`, {
    timeout: 2 * BLOCK_MS + 4 * SLOW_MS,
  }, async (t) => {
    const cluster = await within(RingCluster.start(W), SLOW_MS, 'starting 3 ring processes');
    try {
      // Rank 1 blocks before its third frame of allreduce #1 (W=3, one chunk a segment: frames
      // 0-1 reduce-scatter, 2-3 all-gather), i.e. with frames of that allreduce in flight.
      const block = { kind: 'block' as const, sequence: 1, frameIndex: 2, blockMs: BLOCK_MS };
      await within(cluster.create(1, {}, { 1: block }), SLOW_MS, 'ring set-up');
      assertExact(
        await within(cluster.allreduce(N, 'k0', { epoch: 0, step: 0 }, { returnData: true }), SLOW_MS, '#0'),
        'k0',
        (r) => cluster.log(r),
      );

      const blocked = cluster.fault(1);
      const t1 = Date.now();
      const mid = await within(
        cluster.allreduce(N, 'k1', { epoch: 0, step: 1 }, { returnData: true }),
        BLOCK_MS + SLOW_MS,
        'allreduce #1 with rank 1 blocked in it',
      );
      await blocked;
      const midMs = Date.now() - t1;
      assertExact(mid, 'k1', (r) => cluster.log(r));
      assert.ok(midMs >= BLOCK_MS - 1_000, `allreduce #1 took ${midMs} ms: the block happened inside it`);

      // Between allreduces: rank 1 blocks before it starts #2 (its allreduce request queues
      // behind the block), while ranks 0 and 2 enter #2 and wait on it.
      cluster.block(1, BLOCK_MS);
      const t2 = Date.now();
      const between = await within(
        cluster.allreduce(N, 'k2', { epoch: 0, step: 2 }, { returnData: true }),
        BLOCK_MS + SLOW_MS,
        'allreduce #2 after rank 1 blocked',
      );
      const betweenMs = Date.now() - t2;
      assertExact(between, 'k2', (r) => cluster.log(r));
      assert.ok(betweenMs >= BLOCK_MS - 1_000, `allreduce #2 took ${betweenMs} ms: rank 1 was blocked`);
      t.diagnostic(`allreduce with a ${BLOCK_MS} ms block inside: ${midMs} ms; after one: ${betweenMs} ms`);

      assertExact(
        await within(cluster.allreduce(N, 'k3', { epoch: 0, step: 3 }, { returnData: true }), SLOW_MS, '#3'),
        'k3',
        (r) => cluster.log(r),
      );
    } finally {
      await cluster.dispose();
    }
  });

  it('control: with a 2 s keepalive a rank blocked 10 s is declared lost by its neighbours', {
    timeout: 3 * SLOW_MS,
  }, async (t) => {
    const keepaliveMs = 2_000;
    const cluster = await within(RingCluster.start(W, { keepaliveMs }), SLOW_MS, 'starting 3 ring processes');
    try {
      const blockMs = 10_000;
      const block = { kind: 'block' as const, sequence: 0, frameIndex: 2, blockMs };
      await within(cluster.create(1, {}, { 1: block }), SLOW_MS, 'ring set-up');
      const blocked = cluster.fault(1);
      const outcomes = await within(
        cluster.allreduce(N, 'c0', { epoch: 0, step: 0 }),
        2 * SLOW_MS,
        'allreduce',
      );
      const blockedAt = (await blocked).at;
      const neighbours = outcomes.filter((x) => x.rank !== 1);
      for (const o of neighbours) {
        assert.ok(!o.ok && 'error' in o, `rank ${o.rank} should fail: ${JSON.stringify(o)}`);
        const e = o.error;
        assert.ok(
          e.name === 'PeerLostError' || (e.name === 'RingAbortedError' && e.kind === 'peer-lost'),
          `rank ${o.rank}: ${e.name} ${e.message}`,
        );
        assert.match(e.message, /rank 1 \(127\.0\.0\.1:\d+\)/, `rank ${o.rank}`);
        // Found lost while rank 1 still blocked (by the pings, not when it woke up).
        assert.ok(o.at - blockedAt < blockMs, `rank ${o.rank} failed ${o.at - blockedAt} ms into the block`);
      }
      t.diagnostic(
        `neighbours failed ${Math.max(...neighbours.map((o) => o.at - blockedAt))} ms into the block`,
      );
    } finally {
      await cluster.dispose();
    }
  });
});
