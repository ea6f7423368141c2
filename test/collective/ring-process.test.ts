import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type FaultSpec, type Outcome, RingCluster, within } from './ring-cluster.ts';
import { firstBitDifference, rankData, ringOrderSum } from './ring-data.ts';

/** Every rank must stop waiting within this long after the fault (FAILURE-LESSONS.md 1). */
const FAIL_FAST_MS = 5_000;
/** Bound on steps that are not under test (start-up, healthy allreduces) on a loaded machine. */
const SLOW_MS = 20_000;

function failed(o: Outcome): Extract<Outcome, { error: unknown }> {
  assert.ok(!o.ok && 'error' in o, `rank ${o.rank} should fail with an error, got ${JSON.stringify(o)}`);
  return o as Extract<Outcome, { error: unknown }>;
}

describe('ring allreduce - 4 separate processes', () => {
  let cluster: RingCluster;
  before(async () => {
    cluster = await within(RingCluster.start(4), SLOW_MS, 'starting 4 ring processes');
  });
  after(async () => {
    await cluster?.dispose();
  });

  it('equals the ring-order float32 sum bit for bit for lengths 0, 1, 3, 1009 and 10^6', {
    timeout: 60_000,
  }, async () => {
    await within(cluster.create(1, { chunkBytes: 256 << 10 }), SLOW_MS, 'ring set-up');
    for (const [step, n] of [0, 1, 3, 1009, 1_000_000].entries()) {
      const outcomes = await within(
        cluster.allreduce(n, `proc-${n}`, { epoch: 1, step }, { returnData: true }),
        SLOW_MS,
        `allreduce of ${n}`,
      );
      const exact = ringOrderSum([0, 1, 2, 3].map((r) => rankData(`proc-${n}`, r, n)));
      for (const o of outcomes) {
        assert.ok(o.ok && o.data, `n=${n} rank ${o.rank}: ${JSON.stringify(o)}\n${cluster.log(o.rank)}`);
        assert.equal(firstBitDifference(o.data, exact), -1, `n=${n} rank ${o.rank}`);
      }
    }
  });

  it('a peer whose chunks come in another valid encoding (an unknown field added) is understood: sums bit for bit', {
    timeout: 60_000,
  }, async () => {
    // The sender runs the JavaScript plane (its fault hook); its downstream rank, on the native
    // plane, reads every chunk the slow way (the header bytes differ) and must apply it.
    const fault: FaultSpec = { kind: 'unknown-field', sequence: 0, frameIndex: 0 };
    await within(cluster.create(5, { chunkBytes: 64 << 10 }, { 2: fault }), SLOW_MS, 'ring set-up');
    const n = 300_001;
    const outcomes = await within(
      cluster.allreduce(n, 'reencoded', { epoch: 1, step: 0 }, { returnData: true }),
      SLOW_MS,
      'allreduce',
    );
    const exact = ringOrderSum([0, 1, 2, 3].map((r) => rankData('reencoded', r, n)));
    for (const o of outcomes) {
      assert.ok(o.ok && o.data, `rank ${o.rank}: ${JSON.stringify(o)}\n${cluster.log(o.rank)}`);
      assert.equal(firstBitDifference(o.data, exact), -1, `rank ${o.rank}`);
    }
  });

  const faults: Array<[FaultSpec['kind'], RegExp]> = [
    ['garbage', /undecodable frame|has \w+/],
    ['wrong-step', /has step 6, expected 5/],
    ['short-chunk', /has payload bytes \d+, expected \d+/],
  ];
  for (const [i, [kind, detail]] of faults.entries()) {
    it(`a peer sending ${kind} fails every rank within ${FAIL_FAST_MS} ms, naming it; a new generation works`, {
      timeout: 60_000,
    }, async (t) => {
      // Generations only grow: a server fences off callers of older ones.
      const generation = 10 * (i + 1);
      const bad = 2;
      const fault: FaultSpec = { kind, sequence: 1, frameIndex: 1 };
      const opts = { chunkBytes: 64 << 10, timeoutMs: 30_000 };
      await within(cluster.create(generation, opts, { [bad]: fault }), SLOW_MS, 'ring set-up');
      const first = await within(
        cluster.allreduce(1009, `g${generation}`, { epoch: 2, step: 4 }),
        SLOW_MS,
        'first',
      );
      assert.ok(
        first.every((o) => o.ok),
        'the allreduce before the fault succeeds',
      );
      const faultAt = cluster.fault(bad);
      const outcomes = await within(
        cluster.allreduce(200_000, `g${generation}b`, { epoch: 2, step: 5 }),
        SLOW_MS,
        `${kind} allreduce`,
      );
      const at = (await faultAt).at;
      t.diagnostic(`${kind}: every rank failed within ${Math.max(...outcomes.map((o) => o.at - at))} ms`);
      for (const o of outcomes) {
        const f = failed(o);
        assert.ok(f.at - at < FAIL_FAST_MS, `rank ${o.rank} failed ${f.at - at} ms after the fault`);
        if (o.rank === bad) continue;
        assert.match(f.error.message, new RegExp(`rank ${bad} \\(127\\.0\\.0\\.1:\\d+\\)`), `rank ${o.rank}`);
        if (o.rank === bad + 1) {
          assert.equal(f.error.name, 'ProtocolError');
          assert.equal(f.error.peerRank, bad);
          assert.match(f.error.message, detail);
        } else {
          assert.equal(f.error.name, 'RingAbortedError', `rank ${o.rank}: ${f.error.message}`);
          assert.equal(f.error.originRank, bad + 1, 'the first failing rank is named as the origin');
          assert.equal(f.error.kind, 'protocol');
        }
      }
      // The run goes on with a fresh ring (a new generation) on the same servers.
      await within(cluster.create(generation + 1, { chunkBytes: 64 << 10 }), SLOW_MS, 'new generation');
      const again = await within(
        cluster.allreduce(1009, `g${generation}c`, { epoch: 2, step: 5 }),
        SLOW_MS,
        'again',
      );
      assert.ok(
        again.every((o) => o.ok),
        JSON.stringify(again),
      );
    });
  }
});

describe('ring allreduce - a peer killed or frozen mid-allreduce', () => {
  for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
    it(`${signal} of one rank fails every other rank within ${FAIL_FAST_MS} ms, naming it`, {
      timeout: 60_000,
    }, async (t) => {
      // A frozen peer stops answering HTTP/2 pings: declared lost after at most 1 s + 1 s.
      const keepaliveMs = 1_000;
      const cluster = await within(
        RingCluster.start(3, { keepaliveMs }),
        SLOW_MS,
        'starting 3 ring processes',
      );
      const victim = 1;
      try {
        const opts = { chunkBytes: 16 << 10, timeoutMs: 30_000, keepaliveMs };
        const stall: FaultSpec = { kind: 'stall', sequence: 0, frameIndex: 3 };
        await within(cluster.create(1, opts, { [victim]: stall }), SLOW_MS, 'ring set-up');
        const stalled = cluster.fault(victim);
        const pending = cluster.allreduceEach(300_000, 'victim', { epoch: 0, step: 0 });
        await within(stalled, SLOW_MS, 'the victim reaching its stall point');
        const signalledAt = Date.now();
        cluster.signal(victim, signal);
        // A stopped victim never answers; only the others must.
        const others = pending.filter((_, rank) => rank !== victim);
        const outcomes = await within(Promise.all(others), SLOW_MS, `the ranks beside the ${signal} victim`);
        t.diagnostic(
          `${signal}: the others failed within ${Math.max(...outcomes.map((o) => o.at - signalledAt))} ms`,
        );
        for (const o of outcomes) {
          const f = failed(o);
          const ms = f.at - signalledAt;
          assert.ok(ms < FAIL_FAST_MS, `rank ${o.rank} failed ${ms} ms after ${signal}`);
          assert.match(
            f.error.message,
            new RegExp(`rank ${victim} \\(127\\.0\\.0\\.1:\\d+\\)`),
            `rank ${o.rank}`,
          );
          assert.ok(
            f.error.name === 'PeerLostError' ||
              (f.error.name === 'RingAbortedError' && f.error.kind === 'peer-lost'),
            `rank ${o.rank}: ${f.error.name} ${f.error.message}`,
          );
        }
      } finally {
        if (signal === 'SIGSTOP') cluster.signal(victim, 'SIGKILL');
        await cluster.dispose();
      }
    });
  }
});
