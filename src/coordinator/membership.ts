/**
 * Membership of one run as a pure state machine: `decide(state, event, now) → { state, actions }`.
 * No I/O, no clock of its own: the server (the executor) feeds it requests and ticks and applies
 * the actions (answering calls, logging). Tests drive it with tables.
 *
 * Phases and transitions:
 *   forming  --all worldSize ranks joined-->            active (generation + 1)
 *   forming  --deadline passed (tick)-->                forming (joiners dropped, DEADLINE_EXCEEDED)
 *   active   --rank silent > timeout (tick) / failed--> active with dead ranks: the others get
 *                                                       ABORT_STEP and must Join generation + 1
 *   active   --Join from a non-member-->                 forming next generation (members get REJOIN)
 *   active   --every member left-->                      stopped
 * Membership changes only by forming a new generation; requests naming another generation are
 * refused (fencing).
 */
import {
  type CoordinatorError,
  InvalidRequestError,
  type MembershipTimings,
  PreconditionError,
  RankTakenError,
  RendezvousTimeoutError,
  RunStoppedError,
} from './api.ts';

import { describeFirst, failuresOf } from './membership-status.ts';
import type {
  Decision,
  Failure,
  HeartbeatVerdict,
  Joiner,
  JoinInput,
  Member,
  MembershipAction,
  MembershipEvent,
  MembershipState,
} from './membership-types.ts';

export { type MembershipStatus, membershipStatus, type RankStatus } from './membership-status.ts';
export type {
  Decision,
  Failure,
  HeartbeatVerdict,
  Joiner,
  JoinInput,
  Member,
  MembershipAction,
  MembershipEvent,
  MembershipState,
} from './membership-types.ts';

/** The state of a run before anyone joined. */
export function initialMembership(worldSize: number, timings: MembershipTimings): MembershipState {
  if (!Number.isInteger(worldSize) || worldSize < 1) {
    throw new InvalidRequestError(`distributed.workers (${worldSize}) must be an integer >= 1`);
  }
  return {
    worldSize,
    timings,
    generation: 0,
    phase: 'forming',
    joiners: [],
    deadline: null,
    members: [],
    reference: null,
    failures: [],
  };
}

const reject = (state: MembershipState, error: CoordinatorError): Decision => ({
  state,
  actions: [{ kind: 'reject', error }],
});

/** The one transition function; `now` is the executor's clock reading. */
export function decide(state: MembershipState, event: MembershipEvent, now: number): Decision {
  switch (event.kind) {
    case 'join':
      return decideJoin(state, event.join, now);
    case 'joinCancelled': {
      const joiners = state.joiners.filter((j) => j.workerId !== event.workerId);
      return {
        state: { ...state, joiners, deadline: joiners.length > 0 ? state.deadline : null },
        actions: [],
      };
    }
    case 'heartbeat':
      return decideHeartbeat(state, event, now);
    case 'leave':
      return decideLeave(state, event, now);
    case 'tick':
      return tick(state, now);
    case 'stop': {
      const error = new RunStoppedError(`run stopped: ${event.reason}`);
      const actions: MembershipAction[] =
        state.joiners.length > 0
          ? [{ kind: 'rendezvousFailed', workerIds: state.joiners.map((j) => j.workerId), error }]
          : [];
      return { state: { ...state, phase: 'stopped', joiners: [], deadline: null }, actions };
    }
  }
}

function decideJoin(state: MembershipState, join: JoinInput, now: number): Decision {
  const W = state.worldSize;
  if (state.phase === 'stopped') return reject(state, new PreconditionError('run is stopped; Join refused'));
  if (join.rank !== null && (!Number.isInteger(join.rank) || join.rank < 0 || join.rank >= W)) {
    return reject(
      state,
      new InvalidRequestError(`JoinRequest.rank (${join.rank}) must be < world_size (${W})`),
    );
  }
  if (join.worldSize !== 0 && join.worldSize !== W) {
    return reject(
      state,
      new PreconditionError(
        `JoinRequest.world_size (${join.worldSize}) of worker "${join.workerId}" differs from the run's world_size (${W})`,
      ),
    );
  }
  const ref = state.reference;
  if (ref) {
    for (const [field, mine, theirs] of [
      ['model_signature', join.modelSignature, ref.modelSignature],
      ['config_digest', join.configDigest, ref.configDigest],
    ] as const) {
      if (mine !== theirs) {
        return reject(
          state,
          new PreconditionError(
            `JoinRequest.${field} of worker "${join.workerId}" ("${mine}") differs from worker "${ref.by}"'s ("${theirs}")`,
          ),
        );
      }
    }
  }
  const reference = ref ?? {
    modelSignature: join.modelSignature,
    configDigest: join.configDigest,
    by: join.workerId,
  };
  // Idempotent re-Join of a live member of the active generation: answer with the same membership.
  if (state.phase === 'active') {
    const m = state.members.find((x) => x.workerId === join.workerId);
    const intact = state.members.every((x) => x.status === 'alive');
    if (m && intact && (join.rank === null || join.rank === m.rank)) {
      return {
        state,
        actions: [{ kind: 'formed', generation: state.generation, members: state.members }],
      };
    }
  }
  const others = state.joiners.filter((j) => j.workerId !== join.workerId);
  if (join.rank !== null) {
    const holder = others.find((j) => j.rank === join.rank);
    if (holder) {
      return reject(
        state,
        new RankTakenError(
          `rank ${join.rank} is already held by worker "${holder.workerId}" (${holder.address}); worker "${join.workerId}" cannot take it`,
        ),
      );
    }
  }
  if (others.length >= W) {
    return reject(
      state,
      new PreconditionError(
        `world_size (${W}) ranks already joined; worker "${join.workerId}" is one too many`,
      ),
    );
  }
  const joiners = [...others, { ...join, at: now }];
  const deadline = state.deadline ?? now + state.timings.rendezvousTimeoutMs;
  // A Join from outside a running generation starts forming the next one (members get REJOIN).
  const next: MembershipState = { ...state, phase: 'forming', joiners, deadline, reference };
  if (joiners.length < W) return { state: next, actions: [{ kind: 'wait', workerId: join.workerId }] };
  const ranks = assignRanks(joiners, W);
  const generation = state.generation + 1;
  const members: Member[] = joiners
    .map((j, i) => ({
      rank: ranks[i],
      workerId: j.workerId,
      address: j.address,
      host: j.host,
      lastSeen: now,
      state: 0,
      epoch: 0,
      step: 0,
      status: 'alive' as const,
    }))
    .sort((a, b) => a.rank - b.rank);
  return {
    state: { ...next, phase: 'active', generation, joiners: [], deadline: null, members },
    actions: [
      { kind: 'wait', workerId: join.workerId },
      { kind: 'formed', generation, members },
    ],
  };
}

/** Declared ranks stay; the others get the lowest free ranks in join order. */
export function assignRanks(joiners: readonly Pick<Joiner, 'rank'>[], worldSize: number): number[] {
  const taken = new Set(joiners.flatMap((j) => (j.rank === null ? [] : [j.rank])));
  let next = 0;
  return joiners.map((j) => {
    if (j.rank !== null) return j.rank;
    while (taken.has(next)) next++;
    taken.add(next);
    return next < worldSize ? next : -1;
  });
}

function checkMember(
  state: MembershipState,
  what: string,
  e: { generation: number; rank: number; workerId: string },
): { error: CoordinatorError } | { member: Member } {
  if (!Number.isInteger(e.rank) || e.rank < 0 || e.rank >= state.worldSize) {
    return {
      error: new InvalidRequestError(`${what}.rank (${e.rank}) must be < world_size (${state.worldSize})`),
    };
  }
  if (state.generation === 0 || e.generation !== state.generation) {
    return {
      error: new PreconditionError(
        `${what}.generation (${e.generation}) is not the run's current generation (${state.generation}); Join again`,
      ),
    };
  }
  const m = state.members[e.rank];
  if (m.workerId !== e.workerId) {
    return {
      error: new PreconditionError(
        `${what}.worker_id ("${e.workerId}") is not rank ${e.rank}'s worker ("${m.workerId}") in generation ${state.generation}`,
      ),
    };
  }
  return { member: m };
}

function markDead(state: MembershipState, rank: number, now: number, cause: string): Decision {
  const m = state.members[rank];
  const failure: Failure = {
    generation: state.generation,
    rank,
    host: m.host,
    workerId: m.workerId,
    at: now,
    cause,
    consequence: failuresOf(state).length > 0,
  };
  const members = state.members.map((x) => (x.rank === rank ? { ...x, status: 'dead' as const } : x));
  return {
    state: { ...state, members, failures: [...state.failures, failure] },
    actions: [{ kind: 'declaredDead', failure }],
  };
}

function decideHeartbeat(
  state: MembershipState,
  e: Extract<MembershipEvent, { kind: 'heartbeat' }>,
  now: number,
): Decision {
  const checked = checkMember(state, 'HeartbeatRequest', e);
  if ('error' in checked) return reject(state, checked.error);
  let s = state;
  const actions: MembershipAction[] = [];
  if (checked.member.status === 'alive') {
    const members = s.members.map((x) =>
      x.rank === e.rank ? { ...x, lastSeen: now, state: e.state, epoch: e.epoch, step: e.step } : x,
    );
    s = { ...s, members };
    if (e.failed) {
      const d = markDead(s, e.rank, now, e.message || 'worker reported WORKER_STATE_FAILED');
      s = d.state;
      actions.push(...d.actions);
    }
  }
  const deadRanks = s.members.filter((x) => x.status === 'dead').map((x) => x.rank);
  let verdict: HeartbeatVerdict = 'continue';
  let message = '';
  if (s.phase === 'stopped') {
    verdict = 'stop';
    message = 'run stopped';
  } else if (deadRanks.length > 0) {
    verdict = 'abort_step';
    message = describeFirst(s);
  } else if (s.phase === 'forming') {
    verdict = 'rejoin';
    message = `generation ${s.generation + 1} is forming; Join again`;
  }
  actions.push({ kind: 'heartbeatReply', generation: s.generation, verdict, deadRanks, message });
  return { state: s, actions };
}

function decideLeave(
  state: MembershipState,
  e: Extract<MembershipEvent, { kind: 'leave' }>,
  now: number,
): Decision {
  const checked = checkMember(state, 'LeaveRequest', e);
  if ('error' in checked) return reject(state, checked.error);
  if (checked.member.status !== 'alive') return { state, actions: [{ kind: 'leaveAck' }] };
  let s = state;
  const actions: MembershipAction[] = [];
  if (e.exitCode !== 0) {
    const d = markDead(s, e.rank, now, `left with exit code ${e.exitCode}: ${e.reason || 'no reason given'}`);
    s = d.state;
    actions.push(...d.actions);
  } else {
    const members = s.members.map((x) => (x.rank === e.rank ? { ...x, status: 'left' as const } : x));
    s = { ...s, members };
    if (members.every((x) => x.status === 'left') && s.phase === 'active') s = { ...s, phase: 'stopped' };
  }
  actions.push({ kind: 'leaveAck' });
  return { state: s, actions };
}

/**
 * The timer's work: declares silent ranks of the active generation dead after
 * `heartbeatTimeoutMs`, and fails a rendezvous whose deadline passed.
 */
export function tick(state: MembershipState, now: number): Decision {
  let s = state;
  const actions: MembershipAction[] = [];
  if (s.phase === 'active') {
    for (const m of s.members) {
      const silence = now - m.lastSeen;
      if (m.status === 'alive' && silence >= s.timings.heartbeatTimeoutMs) {
        const d = markDead(
          s,
          m.rank,
          now,
          `no heartbeat for ${silence} ms (timeout ${s.timings.heartbeatTimeoutMs} ms)`,
        );
        s = d.state;
        actions.push(...d.actions);
      }
    }
  }
  if (s.phase === 'forming' && s.deadline !== null && now >= s.deadline && s.joiners.length > 0) {
    const ranks = assignRanks(s.joiners, s.worldSize);
    const missing: number[] = [];
    for (let r = 0; r < s.worldSize; r++) if (!ranks.includes(r)) missing.push(r);
    const present = s.joiners
      .map((j, i) => `rank ${ranks[i]} = worker "${j.workerId}" at ${j.address} (host ${j.host})`)
      .join('; ');
    const error = new RendezvousTimeoutError(
      `rendezvous of generation ${s.generation + 1} timed out after ${s.timings.rendezvousTimeoutMs} ms: ` +
        `ranks [${missing.join(', ')}] never joined; joined: ${present}`,
      missing,
    );
    actions.push({ kind: 'rendezvousFailed', workerIds: s.joiners.map((j) => j.workerId), error });
    s = { ...s, joiners: [], deadline: null };
  }
  return { state: s, actions };
}
