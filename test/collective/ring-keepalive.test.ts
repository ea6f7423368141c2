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

/** Allreduces #0 and #2 around #1, on `cluster`'s ring (generation 1), all checked exact. */
async function around(cluster: RingCluster, middle: () => Promise<Outcome[]>, what: string): Promise<number> {
  const log = (r: number): string => cluster.log(r);
  assertExact(
    await within(
      cluster.allreduce(N, `${what}0`, { epoch: 0, step: 0 }, { returnData: true }),
      SLOW_MS,
      '#0',
    ),
    `${what}0`,
    log,
  );
  const t0 = Date.now();
  const outcomes = await within(middle(), BLOCK_MS + SLOW_MS, `allreduce #1 (${what})`);
  const ms = Date.now() - t0;
  assertExact(outcomes, `${what}1`, log);
  assert.ok(ms >= BLOCK_MS - 1_000, `${what}: allreduce #1 took ${ms} ms: rank 1 was blocked during it`);
  assertExact(
    await within(
      cluster.allreduce(N, `${what}2`, { epoch: 0, step: 2 }, { returnData: true }),
      SLOW_MS,
      '#2',
    ),
    `${what}2`,
    log,
  );
  return ms;
}

/**
 * Rank 1 blocks before its third frame of allreduce #1 (W=3, one chunk a segment: frames 0-1
 * reduce-scatter, 2-3 all-gather), i.e. inside its send path with frames of #1 in flight.
 */
async function blockMidAllreduce(cluster: RingCluster): Promise<number> {
  const block = { kind: 'block' as const, sequence: 1, frameIndex: 2, blockMs: BLOCK_MS };
  await within(cluster.create(1, {}, { 1: block }), SLOW_MS, 'ring set-up');
  return around(
    cluster,
    async () => {
      const blocked = cluster.fault(1);
      const outcomes = await cluster.allreduce(N, 'mid1', { epoch: 0, step: 1 }, { returnData: true });
      await blocked;
      return outcomes;
    },
    'mid',
  );
}

/**
 * Rank 1 blocks after #0, before it starts #1 (its allreduce request queues behind the block),
 * while ranks 0 and 2 enter #1 and wait on it: a long compute step between allreduces.
 */
async function blockBetweenAllreduces(cluster: RingCluster): Promise<number> {
  await within(cluster.create(1), SLOW_MS, 'ring set-up');
  return around(
    cluster,
    () => {
      cluster.block(1, BLOCK_MS);
      return cluster.allreduce(N, 'between1', { epoch: 0, step: 1 }, { returnData: true });
    },
    'between',
  );
}

describe('ring keepalive - a rank whose main thread blocks', () => {
  it(`keeps the ring through a ${BLOCK_MS / 1000} s block mid-allreduce and one between allreduces (shipped settings); sums exact`, {
    timeout: BLOCK_MS + 5 * SLOW_MS,
  }, async (t) => {
    // Two independent rings, one per case, blocked at the same time (Atomics.wait uses no CPU).
    const clusters = await within(
      Promise.allSettled([RingCluster.start(W), RingCluster.start(W)]),
      2 * SLOW_MS,
      'starting 2 x 3 ring processes',
    );
    try {
      const [mid, between] = clusters.map((c) => {
        if (c.status === 'rejected') throw c.reason;
        return c.value;
      });
      const [midMs, betweenMs] = await Promise.all([blockMidAllreduce(mid), blockBetweenAllreduces(between)]);
      t.diagnostic(`allreduce with a ${BLOCK_MS} ms block inside: ${midMs} ms; after one: ${betweenMs} ms`);
    } finally {
      await Promise.all(clusters.map((c) => (c.status === 'fulfilled' ? c.value.dispose() : undefined)));
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
