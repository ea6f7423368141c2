import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  decide,
  initialMembership,
  type JoinInput,
  type MembershipAction,
  type MembershipEvent,
  type MembershipState,
  membershipStatus,
  tick,
} from '../../src/coordinator/membership.ts';

const timings = { heartbeatIntervalMs: 100, heartbeatTimeoutMs: 500, rendezvousTimeoutMs: 1_000 };

function join(workerId: string, extra: Partial<JoinInput> = {}): MembershipEvent {
  return {
    kind: 'join',
    join: {
      workerId,
      rank: null,
      worldSize: 0,
      modelSignature: 'sig',
      configDigest: 'cfg',
      address: `${workerId}:1`,
      host: `host-${workerId}`,
      ...extra,
    },
  };
}

function heartbeat(rank: number, generation = 1, extra: Record<string, unknown> = {}): MembershipEvent {
  return {
    kind: 'heartbeat',
    generation,
    rank,
    workerId: `w${rank}`,
    state: 4,
    epoch: 1,
    step: 0,
    failed: false,
    message: '',
    ...extra,
  };
}

/** Feeds `events` at times 0, 1, 2, … and returns the final state and the last decision's actions. */
function run(events: readonly MembershipEvent[], worldSize = 3, start?: MembershipState) {
  let state = start ?? initialMembership(worldSize, timings);
  let actions: readonly MembershipAction[] = [];
  events.forEach((e, t) => {
    ({ state, actions } = decide(state, e, t));
  });
  return { state, actions };
}

/** A formed generation 1 of w0, w1, w2 (ranks 0, 1, 2), formed at t = 2. */
function formed(): MembershipState {
  return run([join('w0'), join('w1'), join('w2')]).state;
}

function rejection(actions: readonly MembershipAction[]) {
  const r = actions.find((a) => a.kind === 'reject');
  assert.ok(r && r.kind === 'reject', `expected a rejection, got ${JSON.stringify(actions)}`);
  return r.error;
}

describe('membership - rendezvous', () => {
  const cases: {
    name: string;
    events: MembershipEvent[];
    ranks: Record<string, number>;
  }[] = [
    {
      name: 'assigns ranks in join order',
      events: [join('a'), join('b'), join('c')],
      ranks: { a: 0, b: 1, c: 2 },
    },
    {
      name: 'keeps declared ranks and fills the lowest free ones',
      events: [join('a', { rank: 2 }), join('b'), join('c', { rank: 0 })],
      ranks: { a: 2, b: 1, c: 0 },
    },
    {
      name: 'a re-join of the same worker while forming is idempotent',
      events: [join('a'), join('a'), join('b'), join('c')],
      ranks: { a: 0, b: 1, c: 2 },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { state, actions } = run(c.events);
      const f = actions.find((a) => a.kind === 'formed');
      assert.ok(f && f.kind === 'formed');
      assert.equal(f.generation, 1);
      assert.equal(state.phase, 'active');
      assert.deepEqual(Object.fromEntries(f.members.map((m) => [m.workerId, m.rank])), c.ranks);
      assert.deepEqual(
        f.members.map((m) => m.rank),
        [0, 1, 2],
      );
    });
  }

  it('waits until every rank joined', () => {
    const { state, actions } = run([join('a'), join('b')]);
    assert.equal(state.phase, 'forming');
    assert.deepEqual(
      actions.map((a) => a.kind),
      ['wait'],
    );
  });

  const refusals: { name: string; events: MembershipEvent[]; code: GrpcStatus; says: RegExp[] }[] = [
    {
      name: 'a declared rank held by another worker is ALREADY_EXISTS',
      events: [join('a', { rank: 1 }), join('b', { rank: 1 })],
      code: GrpcStatus.ALREADY_EXISTS,
      says: [/rank 1/, /"a"/, /"b"/],
    },
    {
      name: 'a rank >= world size is INVALID_ARGUMENT',
      events: [join('a', { rank: 3 })],
      code: GrpcStatus.INVALID_ARGUMENT,
      says: [/rank \(3\)/, /world_size \(3\)/],
    },
    {
      name: 'a different world size is FAILED_PRECONDITION',
      events: [join('a', { worldSize: 4 })],
      code: GrpcStatus.FAILED_PRECONDITION,
      says: [/world_size \(4\)/, /\(3\)/],
    },
    {
      name: 'a different model signature is FAILED_PRECONDITION naming both values',
      events: [join('a'), join('b', { modelSignature: 'other' })],
      code: GrpcStatus.FAILED_PRECONDITION,
      says: [/model_signature/, /"other"/, /"sig"/],
    },
    {
      name: 'a different config digest is FAILED_PRECONDITION naming both values',
      events: [join('a'), join('b', { configDigest: 'x' })],
      code: GrpcStatus.FAILED_PRECONDITION,
      says: [/config_digest/, /"x"/, /"cfg"/],
    },
  ];
  for (const c of refusals) {
    it(c.name, () => {
      const err = rejection(run(c.events).actions);
      assert.equal(err.code, c.code);
      for (const re of c.says) assert.match(err.message, re);
    });
  }

  it('a missed deadline fails the joiners, listing missing ranks and the addresses given', () => {
    const { state } = run([join('a', { rank: 2 }), join('b')]);
    const early = tick(state, 999);
    assert.deepEqual(early.actions, []);
    const { state: after, actions } = tick(state, 1_000);
    const f = actions.find((a) => a.kind === 'rendezvousFailed');
    assert.ok(f && f.kind === 'rendezvousFailed');
    assert.equal(f.error.code, GrpcStatus.DEADLINE_EXCEEDED);
    assert.deepEqual([...f.workerIds].sort(), ['a', 'b']);
    assert.match(f.error.message, /ranks \[1\] never joined/);
    assert.match(f.error.message, /a:1/);
    assert.match(f.error.message, /b:1/);
    assert.equal(after.joiners.length, 0);
  });

  it('a re-join of a live member is answered with the current generation', () => {
    const { actions, state } = run([join('w1')], 3, formed());
    const f = actions.find((a) => a.kind === 'formed');
    assert.ok(f && f.kind === 'formed');
    assert.equal(f.generation, 1);
    assert.equal(state.phase, 'active');
  });
});

describe('membership - heartbeats and failures', () => {
  it('a silent rank is declared dead exactly at the timeout, not before', () => {
    const s = decide(decide(formed(), heartbeat(0), 300).state, heartbeat(2), 300).state;
    assert.equal(tick(s, 501).actions.length, 0);
    const { state, actions } = tick(s, 502);
    assert.deepEqual(
      actions.map((a) => (a.kind === 'declaredDead' ? a.failure.rank : -1)),
      [1],
    );
    assert.equal(state.members[1].status, 'dead');
  });

  it('the others get ABORT_STEP naming the first failing rank and its host', () => {
    const dead = tick(decide(formed(), heartbeat(0), 300).state, 502).state;
    // Ranks 1 and 2 were both silent; rank 1 is first, rank 2 a consequence.
    const { actions } = decide(dead, heartbeat(0), 503);
    const reply = actions.find((a) => a.kind === 'heartbeatReply');
    assert.ok(reply && reply.kind === 'heartbeatReply');
    assert.equal(reply.verdict, 'abort_step');
    assert.deepEqual(reply.deadRanks, [1, 2]);
    assert.match(reply.message, /rank 1 \(host host-w1/);
    assert.match(reply.message, /ranks 2 failed as a consequence/);
    const st = membershipStatus(dead, 600);
    assert.equal(st.firstFailure?.rank, 1);
    assert.equal(st.firstFailure?.host, 'host-w1');
    assert.equal(st.firstFailure?.at, 502);
    assert.deepEqual(
      st.consequences.map((f) => [f.rank, f.consequence]),
      [[2, true]],
    );
    assert.equal(st.ranks[0].heartbeatAgeMs, 300);
  });

  it('a rank reporting FAILED is the first failure and the others abort', () => {
    const s = decide(formed(), heartbeat(2, 1, { failed: true, message: 'OOM' }), 10).state;
    const st = membershipStatus(s, 20);
    assert.equal(st.firstFailure?.rank, 2);
    assert.match(st.firstFailure?.cause ?? '', /OOM/);
    const reply = decide(s, heartbeat(0), 11).actions.find((a) => a.kind === 'heartbeatReply');
    assert.equal(reply?.kind === 'heartbeatReply' && reply.verdict, 'abort_step');
  });

  const verdicts: { name: string; events: MembershipEvent[]; verdict: string }[] = [
    { name: 'a live generation continues', events: [heartbeat(1)], verdict: 'continue' },
    {
      name: 'a forming generation asks members to rejoin',
      events: [join('new'), heartbeat(1)],
      verdict: 'rejoin',
    },
    {
      name: 'a run whose members all left stops',
      events: [
        { kind: 'leave', generation: 1, rank: 0, workerId: 'w0', reason: 'finished', exitCode: 0 },
        { kind: 'leave', generation: 1, rank: 2, workerId: 'w2', reason: 'finished', exitCode: 0 },
        { kind: 'leave', generation: 1, rank: 1, workerId: 'w1', reason: 'finished', exitCode: 0 },
        heartbeat(1),
      ],
      verdict: 'stop',
    },
    {
      name: 'a non-zero Leave is a failure',
      events: [
        { kind: 'leave', generation: 1, rank: 0, workerId: 'w0', reason: 'crash', exitCode: 3 },
        heartbeat(1),
      ],
      verdict: 'abort_step',
    },
  ];
  for (const c of verdicts) {
    it(`heartbeat verdict: ${c.name}`, () => {
      const { actions } = run(c.events, 3, formed());
      const reply = actions.find((a) => a.kind === 'heartbeatReply');
      assert.ok(reply && reply.kind === 'heartbeatReply');
      assert.equal(reply.verdict, c.verdict);
    });
  }

  const fenced: { name: string; event: MembershipEvent; code: GrpcStatus }[] = [
    { name: 'an older generation', event: heartbeat(1, 0), code: GrpcStatus.FAILED_PRECONDITION },
    { name: 'a newer generation', event: heartbeat(1, 2), code: GrpcStatus.FAILED_PRECONDITION },
    {
      name: 'another worker id',
      event: heartbeat(1, 1, { workerId: 'w9' }),
      code: GrpcStatus.FAILED_PRECONDITION,
    },
    { name: 'a rank >= world size', event: heartbeat(3), code: GrpcStatus.INVALID_ARGUMENT },
  ];
  for (const c of fenced) {
    it(`refuses a heartbeat from ${c.name}`, () => {
      assert.equal(rejection(decide(formed(), c.event, 5).actions).code, c.code);
    });
  }

  it('after a death the survivors form generation 2 and generation 1 is fenced out', () => {
    let s = tick(decide(decide(formed(), heartbeat(0), 400).state, heartbeat(2), 400).state, 502).state;
    s = decide(s, join('w0'), 510).state;
    const { state, actions } = decide(s, join('w2'), 511);
    assert.equal(state.worldSize, 3);
    assert.equal(state.phase, 'forming', 'still one rank short');
    assert.deepEqual(
      actions.map((a) => a.kind),
      ['wait'],
    );
    const g2 = decide(state, join('w3'), 512);
    const f = g2.actions.find((a) => a.kind === 'formed');
    assert.equal(f?.kind === 'formed' && f.generation, 2);
    assert.equal(
      rejection(decide(g2.state, heartbeat(0, 1), 513).actions).code,
      GrpcStatus.FAILED_PRECONDITION,
    );
    assert.equal(membershipStatus(g2.state, 520).firstFailure, null, 'a new generation starts clean');
  });
});
