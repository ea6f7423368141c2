/**
 * The run's membership status, read from the state machine's state: every rank with its
 * heartbeat age, and the first failure of the generation with the failures that followed it
 * marked as consequences (FAILURE-LESSONS 2, 6). Pure.
 */
import type { Failure, Member, MembershipState } from './membership-types.ts';

/** Failures of the current generation, oldest (the cause) first. */
export function failuresOf(state: MembershipState): Failure[] {
  return state.failures.filter((f) => f.generation === state.generation);
}

/** One line naming the first failure of the generation and its consequences ('' when none). */
export function describeFirst(state: MembershipState): string {
  const fs = failuresOf(state);
  if (fs.length === 0) return '';
  const first = fs[0];
  const rest = fs.slice(1).map((f) => f.rank);
  return (
    `rank ${first.rank} (host ${first.host}, worker "${first.workerId}") failed first at ${first.at} ms: ${first.cause}` +
    (rest.length > 0 ? `; ranks ${rest.join(', ')} failed as a consequence` : '')
  );
}

/** One rank in the run's status. */
export interface RankStatus {
  readonly rank: number;
  readonly workerId: string;
  readonly host: string;
  readonly address: string;
  readonly status: Member['status'];
  readonly heartbeatAgeMs: number;
  readonly state: number;
  readonly epoch: number;
  readonly step: number;
}

/** The run's status: every rank, and the first failure of the generation with its consequences. */
export interface MembershipStatus {
  readonly generation: number;
  readonly phase: MembershipState['phase'];
  readonly ranks: readonly RankStatus[];
  /** First failing rank of the current generation, or null. */
  readonly firstFailure: Failure | null;
  /** Ranks that failed after it. */
  readonly consequences: readonly Failure[];
  /** One line naming the first failure and its consequences ('' when none). */
  readonly summary: string;
}

/** A status snapshot for `now`. */
export function membershipStatus(state: MembershipState, now: number): MembershipStatus {
  const fs = failuresOf(state);
  return {
    generation: state.generation,
    phase: state.phase,
    ranks: state.members.map((m) => ({
      rank: m.rank,
      workerId: m.workerId,
      host: m.host,
      address: m.address,
      status: m.status,
      heartbeatAgeMs: now - m.lastSeen,
      state: m.state,
      epoch: m.epoch,
      step: m.step,
    })),
    firstFailure: fs[0] ?? null,
    consequences: fs.slice(1),
    summary: describeFirst(state),
  };
}
