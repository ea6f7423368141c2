/**
 * Membership events from the coordinator's view of the run: given the previous and the current
 * snapshot of its members, which `worker-join`, `worker-leave`, `worker-failed` and `heartbeat`
 * events to publish. Pure: the caller passes the wall clock and keeps the returned memory.
 *
 * Membership events name the rank they are about in `source` (`{ role: 'worker', rank }`) even
 * though the coordinator publishes them: a SIGKILLed rank cannot announce its own death, and the
 * watch view keys its rows by source.
 */
import type { TrainingEvent } from './api.ts';

/** One rank as a membership snapshot shows it (the coordinator's `RankStatus` fits). */
export interface RankSnapshot {
  readonly rank: number;
  readonly status: 'alive' | 'dead' | 'left';
  /** Milliseconds since the rank's last heartbeat (or the generation's formation). */
  readonly heartbeatAgeMs: number;
  readonly epoch: number;
  readonly step: number;
}

/** A failure as a membership snapshot shows it (the coordinator's `Failure` fits). */
export interface FailureSnapshot {
  readonly generation: number;
  readonly rank: number;
  readonly cause: string;
}

/** What {@link membershipEvents} reads (the coordinator's `MembershipStatus` fits). */
export interface MembershipSnapshot {
  readonly generation: number;
  readonly ranks: readonly RankSnapshot[];
  readonly firstFailure: FailureSnapshot | null;
  readonly consequences: readonly FailureSnapshot[];
}

/** Status of every rank seen, by `generation/rank`; start from an empty map. */
export type MembershipMemory = ReadonlyMap<string, RankSnapshot['status']>;

/**
 * The events that turn `prev` into `snapshot`: a join for each rank new to its generation, a
 * failure (with the coordinator's stated cause) or a leave when a rank stops being alive, and a
 * heartbeat for every live rank, stamped with the wall time of its last heartbeat (`wallNow` minus
 * its age), so a watcher's "heartbeat age" is the rank's, not the publisher's.
 */
export function membershipEvents(
  runId: string,
  prev: MembershipMemory,
  snapshot: MembershipSnapshot,
  wallNow: number,
): { events: TrainingEvent[]; memory: MembershipMemory } {
  const events: TrainingEvent[] = [];
  const memory = new Map<string, RankSnapshot['status']>();
  const g = snapshot.generation;
  const alive = snapshot.ranks.filter((r) => r.status === 'alive').length;
  const failures = [snapshot.firstFailure, ...snapshot.consequences].filter(
    (f): f is FailureSnapshot => f !== null && f.generation === g,
  );
  for (const r of snapshot.ranks) {
    const key = `${g}/${r.rank}`;
    const before = prev.get(key);
    memory.set(key, r.status);
    const source = { role: 'worker', rank: r.rank } as const;
    const at = (timestamp: number) => ({ runId, source, timestamp });
    if (before === undefined) {
      events.push({ kind: 'worker-join', ...at(wallNow), metadata: { worldSize: snapshot.ranks.length } });
    }
    if (r.status === 'alive') {
      events.push({
        kind: 'heartbeat',
        ...at(wallNow - Math.max(0, r.heartbeatAgeMs)),
        metadata: { epoch: r.epoch, step: r.step },
      });
    } else if (before !== r.status) {
      if (r.status === 'dead') {
        const cause = failures.find((f) => f.rank === r.rank)?.cause ?? 'declared dead by the coordinator';
        events.push({ kind: 'worker-failed', ...at(wallNow), metadata: { reason: cause } });
      } else {
        events.push({ kind: 'worker-leave', ...at(wallNow), metadata: { worldSize: alive } });
      }
    }
  }
  return { events, memory };
}
