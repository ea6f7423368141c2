import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { PlanBook } from '../../src/coordinator/plans.ts';
import { epochPolicy, epochSchedule, planDigest, planFor } from '../../src/core/index.ts';
import type { bbn } from '../../src/generated/bbn.js';
import { failure, joinReq, readAll, startCoordinator, tinyRun, unary } from './helpers.ts';

type Coord = Awaited<ReturnType<typeof startCoordinator>>;
const open: Coord[] = [];
after(async () => {
  await Promise.all(open.map((c) => c.close()));
});
async function coordinator(...args: Parameters<typeof startCoordinator>): Promise<Coord> {
  const c = await startCoordinator(...args);
  open.push(c);
  return c;
}

async function plan(c: Coord, epoch: number, generation = 0): Promise<bbn.v1.EpochPlan> {
  const r: bbn.v1.GetEpochPlanResponse = await unary(c.client.getEpochPlan.bind(c.client), {
    runId: 'run-1',
    generation,
    epoch,
  });
  assert.ok(r.plan, 'GetEpochPlanResponse.plan is set');
  return r.plan as bbn.v1.EpochPlan;
}

function shards(c: Coord, epoch: number, rank: number, fromStep = 0): Promise<bbn.v1.StreamShardResponse[]> {
  return readAll(c.client.streamShard({ runId: 'run-1', generation: 0, epoch, rank, fromStep }));
}

const counts = [40, 20, 10, 6];

describe('coordinator server - plans and shards', () => {
  it('shards of W=3 ranks concatenate to the global plan of planFor; alpha and lr are epochSchedule', async () => {
    const run = tinyRun(3);
    const c = await coordinator(3, {}, run);
    for (const epoch of [1, 4, 6]) {
      const global = planFor(run.cfg, epochPolicy(run.cfg, epoch, counts), epoch, run.labels, 4);
      const byRank = await Promise.all([0, 1, 2].map((r) => shards(c, epoch, r)));
      assert.equal(byRank[0].length, global.steps);
      for (let s = 0; s < global.steps; s++) {
        const u = byRank.flatMap((rs) => rs[s].uniformIndex);
        const v = byRank.flatMap((rs) => rs[s].reversedIndex);
        assert.deepEqual(u, Array.from(global.uniform.subarray(s * 16, (s + 1) * 16)));
        assert.deepEqual(v, Array.from(global.reversed.subarray(s * 16, (s + 1) * 16)));
        assert.equal(byRank[1][s].step, s);
      }
      // 16 rows over 3 ranks: 6, 5, 5.
      assert.deepEqual(
        byRank.map((rs) => rs[0].uniformIndex.length),
        [6, 5, 5],
      );
      const p = await plan(c, epoch);
      const sched = epochSchedule(run.cfg, epoch);
      assert.equal(p.alpha, sched.alpha);
      assert.equal(p.lr, sched.lr);
      assert.equal(p.steps, global.steps);
      assert.equal(p.globalBatch, 16);
      assert.equal(p.worldSize, 3);
      assert.equal(p.perRankBatch, 6);
      assert.equal(p.planDigest, planDigest(global), "core's planDigest, the one every durable rank checks");
      assert.equal(byRank[2][0].planDigest, p.planDigest);
    }
  });

  it('streams a long epoch under flow control to the last step', async () => {
    const big = tinyRun(2);
    const labels = new Int32Array(16_000).map((_, i) => (i % 7 === 0 ? 3 : i % 4));
    const c = await coordinator(2, {}, { ...big, labels });
    const rows = await shards(c, 1, 1);
    assert.equal(rows.length, 1_000);
    assert.equal(rows[999].step, 999);
  });

  it('streams from from_step when resuming inside an epoch', async () => {
    const c = await coordinator(2);
    const all = await shards(c, 2, 1);
    const tail = await shards(c, 2, 1, 3);
    assert.deepEqual(tail, all.slice(3));
  });

  it('a restarted coordinator serves the identical plan, and the digest does not depend on W', async () => {
    const first = await coordinator(2);
    const before = await shards(first, 3, 1);
    const digest2 = (await plan(first, 3)).planDigest;
    await first.close();
    const second = await coordinator(2);
    assert.deepEqual(await shards(second, 3, 1), before);
    const one = await coordinator(1);
    const three = await coordinator(3);
    assert.equal((await plan(one, 3)).planDigest, digest2);
    assert.equal((await plan(three, 3)).planDigest, digest2);
    assert.notEqual((await plan(three, 4)).planDigest, digest2);
  });

  it('single-branch methods have no second stream; balanced batches have one', () => {
    for (const [method, second] of [
      ['ce', false],
      ['rs', true],
    ] as const) {
      const book = new PlanBook(tinyRun(2, { method }));
      const first = book.shards(1, 0, 2, 0).next().value;
      assert.ok(first);
      assert.equal(first.reversed.length > 0, second, method);
      assert.ok(Number.isNaN(book.summary(1, 2).alpha), 'no alpha outside BBN');
    }
  });
});

describe('coordinator server - checksums, watch and robustness', () => {
  it('compares checksums: PENDING until every rank reported, then MATCH or MISMATCH naming the ranks', async () => {
    const c = await coordinator(3);
    const joined = await Promise.all(
      ['a', 'b', 'z'].map((id, rank) => unary(c.client.join.bind(c.client), joinReq(id, { rank }))),
    );
    const report = (rank: number, step: number, sum: number[]) =>
      unary(c.client.reportChecksum.bind(c.client), {
        runId: 'run-1',
        generation: joined[0].generation,
        epoch: 1,
        step,
        rank,
        checksum: Buffer.from(sum),
        algorithm: 'sha256',
      });
    assert.equal((await report(0, 5, [1, 2])).status, 1);
    assert.equal((await report(1, 5, [1, 2])).status, 1);
    const ok = await report(2, 5, [1, 2]);
    assert.equal(ok.status, 2);
    assert.deepEqual([...ok.reference], [1, 2]);
    await report(1, 10, [9, 9]);
    await report(0, 10, [1, 2]);
    const bad = await report(2, 10, [1, 2]);
    assert.equal(bad.status, 3);
    assert.deepEqual(bad.mismatchedRanks, [1]);
    assert.match(bad.message, /rank 1 has 0909/);
    const stale = await failure(
      unary(c.client.reportChecksum.bind(c.client), {
        runId: 'run-1',
        generation: 0,
        epoch: 1,
        step: 1,
        rank: 0,
        checksum: Buffer.from([1]),
        algorithm: 'sha256',
      }),
    );
    assert.equal(stale.code, grpc.status.FAILED_PRECONDITION);
  });

  it('publishes each plan to watchers when first requested, and ends them with ABORTED on close', async () => {
    const c = await coordinator(2);
    await plan(c, 1);
    const stream = c.client.watchEpochs({ runId: 'run-1', fromEpoch: 1 });
    const got: number[] = [];
    const ended = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    const two = new Promise<void>((resolve) =>
      stream.on('data', (m: bbn.v1.WatchEpochsResponse) => {
        got.push(Number(m.plan?.epoch));
        if (got.length === 2) resolve();
      }),
    );
    // The watch is registered once the latest plan (epoch 1) arrived; then epoch 2 is published.
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    await plan(c, 2);
    await two;
    assert.deepEqual(got, [1, 2]);
    await c.close();
    assert.equal((await ended).code, grpc.status.ABORTED);
  });

  it('validates requests, survives garbage and cancelled streams, and keeps serving', async () => {
    const c = await coordinator(2);
    const cases: [Promise<unknown>, grpc.status, RegExp][] = [
      [
        unary(c.client.getEpochPlan.bind(c.client), { runId: '', epoch: 1 }),
        grpc.status.INVALID_ARGUMENT,
        /run_id/,
      ],
      [
        unary(c.client.getEpochPlan.bind(c.client), { runId: 'other', epoch: 1 }),
        grpc.status.NOT_FOUND,
        /"other"/,
      ],
      [
        unary(c.client.getEpochPlan.bind(c.client), { runId: 'run-1', epoch: 0 }),
        grpc.status.INVALID_ARGUMENT,
        /epoch/,
      ],
      [plan(c, 1, 7), grpc.status.FAILED_PRECONDITION, /generation \(7\)/],
      [shards(c, 1, 2), grpc.status.INVALID_ARGUMENT, /rank \(2\) must be < world_size \(2\)/],
      [shards(c, 1, 0, 999), grpc.status.INVALID_ARGUMENT, /from_step/],
      [
        unary(c.client.heartbeat.bind(c.client), { runId: 'run-1', generation: 3, rank: 0, workerId: 'x' }),
        grpc.status.FAILED_PRECONDITION,
        /generation/,
      ],
      [
        unary(c.client.join.bind(c.client), joinReq('a', { rank: 5 })),
        grpc.status.INVALID_ARGUMENT,
        /rank \(5\)/,
      ],
    ];
    for (const [p, code, re] of cases) {
      const e = await failure(p);
      assert.equal(e.code, code, e.details);
      assert.match(e.details, re);
    }
    // Undecodable bytes sent straight to Join.
    const raw = new grpc.Client(c.address, grpc.credentials.createInsecure());
    const garbage = await failure(
      new Promise((resolve, reject) =>
        raw.makeUnaryRequest(
          '/bbn.v1.CoordinatorService/Join',
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12]),
          (err, res) => (err ? reject(err) : resolve(res)),
        ),
      ),
    );
    assert.notEqual(garbage.code, grpc.status.OK);
    raw.close();
    // A client that cancels a shard stream after one message.
    const stream = c.client.streamShard({ runId: 'run-1', generation: 0, epoch: 1, rank: 0, fromStep: 0 });
    const cancelled = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.cancel();
    assert.equal((await cancelled).code, grpc.status.CANCELLED);
    // Still serving.
    assert.equal((await plan(c, 1)).epoch, 1);
    assert.equal((await shards(c, 1, 1)).length, (await plan(c, 1)).steps);
  });
});
