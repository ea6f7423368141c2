/**
 * Abort bookkeeping: where a ring failure started (its origin), the abort frame that carries it
 * around the ring, and the errors each rank reports, so the first failing rank stays named as the
 * cause and every other rank's error marks itself as a consequence (FAILURE-LESSONS.md 2).
 */
import { bbn } from '../generated/bbn.js';
import { type AbortKind, type AbortOrigin, CollectiveError, describeRank, RingAbortedError } from './api.ts';

const KIND_TO_REASON: Record<AbortKind, bbn.v1.AbortReason> = {
  protocol: bbn.v1.AbortReason.ABORT_REASON_PROTOCOL,
  'peer-lost': bbn.v1.AbortReason.ABORT_REASON_PEER_LOST,
  timeout: bbn.v1.AbortReason.ABORT_REASON_TIMEOUT,
  local: bbn.v1.AbortReason.ABORT_REASON_LOCAL,
};

function reasonToKind(reason: number): AbortKind {
  const found = (Object.keys(KIND_TO_REASON) as AbortKind[]).find((k) => KIND_TO_REASON[k] === reason);
  return found ?? 'protocol';
}

/** The origin of `err` as seen by rank `self`: the error's own origin, or `self` if it started here. */
export function originOf(err: CollectiveError, self: { rank: number; address: string }): AbortOrigin {
  return err instanceof RingAbortedError
    ? { rank: err.originRank, address: err.originAddress, kind: err.kind, message: err.originMessage }
    : { rank: self.rank, address: self.address, kind: err.kind, message: err.message };
}

/** The abort frame announcing `origin` to the neighbours. */
export function abortFrame(
  origin: AbortOrigin,
  ring: { runId: string; generation: number; sequence: number },
): bbn.v1.RingAbort.$Properties {
  return {
    runId: ring.runId,
    generation: ring.generation,
    originRank: origin.rank,
    originAddress: origin.address,
    reason: KIND_TO_REASON[origin.kind],
    message: origin.message,
    sequence: ring.sequence,
  };
}

/** The error rank `rank` reports when an abort frame reaches it. */
export function abortedBy(abort: bbn.v1.RingAbort, rank: number): RingAbortedError {
  const kind = reasonToKind(abort.reason);
  return new RingAbortedError(
    `rank ${rank}: ring aborted by ${describeRank(abort.originRank, abort.originAddress)} (${kind}): ${abort.message}`,
    { rank: abort.originRank, address: abort.originAddress, kind, message: abort.message },
  );
}

/** The error for a call on a ring that `failure` aborted earlier. */
export function abortedEarlier(
  failure: CollectiveError,
  self: { rank: number; address: string },
): RingAbortedError {
  return new RingAbortedError(
    `rank ${self.rank}: ring was aborted earlier: ${failure.message}`,
    originOf(failure, self),
    {
      cause: failure,
    },
  );
}

/** Any thrown value as a CollectiveError (a non-collective one is a bug; it still aborts the ring). */
export function asCollective(err: unknown, rank: number): CollectiveError {
  if (err instanceof CollectiveError) return err;
  return new CollectiveError(`rank ${rank}: internal error: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
  });
}
