/**
 * Conversions from the coordinator's plain data to the wire messages of
 * proto/bbn/v1/coordinator.proto, and the flow-controlled writer of shard streams.
 */
import type * as grpc from '@grpc/grpc-js';
import type { bbn } from '../generated/bbn.js';
import type { CoordinatorRun, MembershipTimings } from './api.ts';
import type { Member } from './membership.ts';
import type { EpochSummary, ShardRows } from './plans.ts';

/** The JoinResponse of `rank` in a formed generation. */
export function joinResponse(
  run: CoordinatorRun,
  timings: MembershipTimings,
  generation: number,
  rank: number,
  members: readonly Member[],
): bbn.v1.IJoinResponse {
  const resume = run.resume;
  return {
    runId: run.runId,
    generation,
    rank,
    worldSize: members.length,
    members: members.map((m) => ({ rank: m.rank, address: m.address, workerId: m.workerId, host: m.host })),
    heartbeatIntervalMs: timings.heartbeatIntervalMs,
    heartbeatTimeoutMs: timings.heartbeatTimeoutMs,
    startEpoch: resume?.epoch ?? 1,
    startStep: resume?.step ?? 0,
    checkpointUri: resume?.checkpointUri ?? '',
  };
}

/** The EpochPlan message of a summary served to `generation`. */
export function planMessage(runId: string, generation: number, s: EpochSummary): bbn.v1.IEpochPlan {
  return {
    runId,
    epoch: s.epoch,
    alpha: s.alpha,
    lr: s.lr,
    steps: s.steps,
    globalBatch: s.globalBatch,
    worldSize: s.worldSize,
    perRankBatch: s.perRankBatch,
    planDigest: s.planDigest,
    generation,
  };
}

/**
 * Writes one message per step, waiting for the client whenever grpc-js buffers (flow control),
 * and stops quietly when the client cancels or `closed()` turns true; ends the call with OK.
 */
export async function writeShards(
  call: grpc.ServerWritableStream<unknown, bbn.v1.IStreamShardResponse>,
  rows: Iterable<ShardRows>,
  closed: () => boolean,
): Promise<void> {
  for (const s of rows) {
    if (call.cancelled || call.destroyed || closed()) return;
    const ok = call.write({
      epoch: s.epoch,
      step: s.step,
      uniformIndex: Array.from(s.uniform),
      reversedIndex: Array.from(s.reversed),
      planDigest: s.planDigest,
    });
    if (!ok) await drainedOrGone(call);
  }
  if (!call.cancelled && !call.destroyed) call.end();
}

/** Resolves when the call drains, is cancelled or closes; removes its listeners either way. */
function drainedOrGone(call: grpc.ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      for (const e of EVENTS) call.off(e, done);
      resolve();
    };
    for (const e of EVENTS) call.on(e, done);
  });
}

const EVENTS = ['drain', 'cancelled', 'close', 'error'] as const;
