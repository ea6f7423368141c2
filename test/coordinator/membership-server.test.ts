import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { fromStatus, RendezvousTimeoutError } from '../../src/coordinator/api.ts';
import type { bbn } from '../../src/generated/bbn.js';
import { FakeClock, failure, joinReq, startCoordinator, unary } from './helpers.ts';

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

function join(c: Coord, req: bbn.v1.IJoinRequest): Promise<bbn.v1.JoinResponse> {
  return unary(c.client.join.bind(c.client), req);
}

function heartbeat(c: Coord, g: bbn.v1.JoinResponse, workerId: string): Promise<bbn.v1.HeartbeatResponse> {
  return unary(c.client.heartbeat.bind(c.client), {
    runId: 'run-1',
    generation: g.generation,
    rank: g.rank,
    workerId,
    state: 4,
  });
}

describe('coordinator server - rendezvous over gRPC', () => {
  it('gathers 3 workers with declared and assigned ranks into generation 1', async () => {
    const c = await coordinator(3);
    const [a, b, z] = await Promise.all([
      join(c, joinReq('a')),
      join(c, joinReq('b', { rank: 0 })),
      join(c, joinReq('z')),
    ]);
    assert.equal(b.rank, 0);
    assert.deepEqual([a.rank, z.rank].sort(), [1, 2]);
    for (const r of [a, b, z]) {
      assert.equal(r.generation, 1);
      assert.equal(r.worldSize, 3);
      assert.equal(r.startEpoch, 1);
      assert.deepEqual(
        r.members.map((m) => m.rank),
        [0, 1, 2],
      );
    }
    assert.equal(a.members[a.rank].workerId, 'a');
    assert.equal(a.members[0].address, joinReq('b').address);
    // Joining again is idempotent within the generation.
    const again = await join(c, joinReq('a'));
    assert.equal(again.generation, 1);
    assert.equal(again.rank, a.rank);
  });

  it('refuses a duplicate declared rank with ALREADY_EXISTS and a signature mismatch naming both', async () => {
    const c = await coordinator(3);
    const held = failure(join(c, joinReq('a', { rank: 1 })));
    const dup = await failure(join(c, joinReq('b', { rank: 1 })));
    assert.equal(dup.code, GrpcStatus.ALREADY_EXISTS);
    assert.match(dup.details, /rank 1 is already held by worker "a"/);
    const sig = await failure(join(c, joinReq('c', { modelSignature: 'resnet8#zzz' })));
    assert.equal(sig.code, GrpcStatus.FAILED_PRECONDITION);
    assert.match(sig.details, /model_signature/);
    assert.match(sig.details, /"resnet8#zzz"/);
    assert.match(sig.details, /"resnet8#abc"/);
    await c.close();
    // The held Join ends when the coordinator closes, with ABORTED.
    assert.equal((await held).code, GrpcStatus.ABORTED);
  });

  it('fails the rendezvous with DEADLINE_EXCEEDED listing the missing rank and the addresses given', async () => {
    const c = await coordinator(3, {
      clock: { now: () => performance.now() },
      timings: { rendezvousTimeoutMs: 150 },
      tickIntervalMs: 10,
    });
    const errs = await Promise.all([
      failure(join(c, joinReq('a', { rank: 0 }))),
      failure(join(c, joinReq('b', { rank: 2 }))),
    ]);
    for (const e of errs) {
      assert.equal(e.code, GrpcStatus.DEADLINE_EXCEEDED);
      assert.match(e.details, /ranks \[1\] never joined/);
      assert.match(e.details, new RegExp(joinReq('a').address as string));
      assert.match(e.details, new RegExp(joinReq('b').address as string));
      assert.ok(fromStatus(e) instanceof RendezvousTimeoutError);
    }
  });

  it('declares a silent rank dead after the timeout and tells the others to ABORT_STEP', async () => {
    const clock = new FakeClock();
    const c = await coordinator(3, { clock, timings: { heartbeatTimeoutMs: 500 } });
    const [r0, r1, r2] = await Promise.all(['a', 'b', 'z'].map((id, rank) => join(c, joinReq(id, { rank }))));
    clock.t += 300;
    assert.equal((await heartbeat(c, r0, 'a')).action, 1, 'CONTINUE while everyone is alive');
    await heartbeat(c, r2, 'z');
    clock.t += 199; // rank 1 silent for 499 ms
    c.server.tick();
    assert.equal((await heartbeat(c, r0, 'a')).action, 1, 'still CONTINUE within the timeout');
    clock.t += 1; // 500 ms of silence
    c.server.tick();
    assert.equal(c.server.status().firstFailure?.rank, 1);
    assert.equal(c.server.status().firstFailure?.host, 'host-b');
    const hb = await heartbeat(c, r2, 'z');
    assert.equal(hb.action, 2, 'ABORT_STEP');
    assert.deepEqual(hb.deadRanks, [1]);
    assert.match(hb.message, /rank 1 \(host host-b/);
    // The dead rank's own late heartbeat is not a resurrection.
    assert.equal((await heartbeat(c, r1, 'b')).action, 2);
    assert.equal(c.server.status().ranks[1].status, 'dead');
  });
});
