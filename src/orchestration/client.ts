/**
 * Client side of a durable run: submit it, and talk to it by run id (status, pause, resume,
 * cancel, scale). `runStatus` adds each rank's live position, read from the heartbeat details of
 * the pending `trainEpoch` activities (heartbeats are not in workflow history, so the workflow's
 * own `progress` query cannot know the step).
 */
import type { Client, WorkflowHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import {
  coordinatorTaskQueue,
  type RendezvousHeartbeat,
  type RunProgress,
  runWorkflowId,
  TRAINING_WORKFLOW,
  type TrainHeartbeat,
  type TrainingInput,
  type TrainingResult,
} from './api.ts';
import { cancelSignal, pauseSignal, progressQuery, resumeSignal, scaleUpdate } from './messages.ts';

/** The workflow function's type, for typed handles without importing the workflow module. */
export type TrainingWorkflow = (input: TrainingInput) => Promise<TrainingResult>;

/** Starts run `input.runId` (workflow id `bbn-run-<runId>`) on the coordinator's task queue unless told otherwise. */
export function startRun(
  client: Client,
  input: TrainingInput,
  opts: { taskQueue?: string } = {},
): Promise<WorkflowHandleWithFirstExecutionRunId<TrainingWorkflow>> {
  return client.workflow.start<TrainingWorkflow>(TRAINING_WORKFLOW, {
    taskQueue: opts.taskQueue ?? coordinatorTaskQueue(input.runId),
    workflowId: runWorkflowId(input.runId),
    args: [input],
  });
}

/** The handle of run `runId`. */
export function runHandle(client: Client, runId: string): WorkflowHandle<TrainingWorkflow> {
  return client.workflow.getHandle<TrainingWorkflow>(runWorkflowId(runId));
}

/** One rank's live position, from its pending activity. */
export interface RankStatus {
  readonly rank: number;
  readonly epoch: number;
  readonly step: number;
  readonly generation: number;
  readonly attempt: number;
  /** Seconds since the last heartbeat (null before the first). */
  readonly heartbeatAgeSeconds: number | null;
  readonly lastFailure: string | null;
  /** Moving averages of the rank's step: compute and allreduce wait (null before its first step). */
  readonly computeSeconds: number | null;
  readonly reduceSeconds: number | null;
  /** Compute time over the median of all ranks', when this rank is a straggler (see {@link STRAGGLER_RATIO}). */
  readonly stragglerRatio: number | null;
}

/** A rank whose compute time per step is this many times the ranks' median is named a straggler. */
export const STRAGGLER_RATIO = 1.5;

/** Marks the stragglers: ranks computing {@link STRAGGLER_RATIO}x the median of all ranks or slower. */
export function markStragglers(ranks: readonly Omit<RankStatus, 'stragglerRatio'>[]): RankStatus[] {
  const times = ranks.map((r) => r.computeSeconds).filter((t): t is number => t !== null && t > 0);
  const sorted = [...times].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return ranks.map((r) => {
    const ratio = times.length >= 2 && r.computeSeconds !== null ? r.computeSeconds / median : 0;
    return { ...r, stragglerRatio: ratio >= STRAGGLER_RATIO ? ratio : null };
  });
}

/** `progress` plus the workflow's execution status and every training rank's live position. */
export interface RunStatus extends RunProgress {
  readonly execution: string;
  readonly ranks: readonly RankStatus[];
  /** A generation being formed: the ranks the coordinator still waits for; null when none is. */
  readonly rendezvous: RendezvousHeartbeat | null;
}

/** Status of run `runId` (see {@link RunStatus}). */
export async function runStatus(client: Client, runId: string, now = Date.now()): Promise<RunStatus> {
  const handle = runHandle(client, runId);
  const [progress, description] = await Promise.all([handle.query(progressQuery), handle.describe()]);
  const ranks: Omit<RankStatus, 'stragglerRatio'>[] = [];
  let rendezvous: RendezvousHeartbeat | null = null;
  for (const a of description.raw.pendingActivities ?? []) {
    const payload = a.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    if (a.activityType?.name === 'formGeneration') {
      rendezvous = defaultPayloadConverter.fromPayload<RendezvousHeartbeat>(payload);
      continue;
    }
    if (a.activityType?.name !== 'trainEpoch') continue;
    const hb = defaultPayloadConverter.fromPayload<TrainHeartbeat>(payload);
    const last = a.lastHeartbeatTime?.seconds;
    ranks.push({
      rank: hb.rank,
      epoch: hb.epoch,
      step: hb.step,
      generation: hb.generation,
      attempt: a.attempt ?? 1,
      heartbeatAgeSeconds: last == null ? null : now / 1000 - Number(last),
      lastFailure: a.lastFailure?.message ?? null,
      computeSeconds: hb.computeSeconds ?? null,
      reduceSeconds: hb.reduceSeconds ?? null,
    });
  }
  ranks.sort((x, y) => x.rank - y.rank);
  return { ...progress, execution: description.status.name, ranks: markStragglers(ranks), rendezvous };
}

/** Pauses run `runId` at its next epoch boundary. */
export function pauseRun(client: Client, runId: string): Promise<void> {
  return runHandle(client, runId).signal(pauseSignal);
}

/** Resumes a paused run. */
export function resumeRun(client: Client, runId: string): Promise<void> {
  return runHandle(client, runId).signal(resumeSignal);
}

/** Stops run `runId` cleanly (final checkpoint); resolves with the workflow's result. */
export async function cancelRun(client: Client, runId: string): Promise<TrainingResult> {
  const handle = runHandle(client, runId);
  await handle.signal(cancelSignal);
  return handle.result();
}

/** Requests world size `workers` from the next epoch boundary; rejects (validator) outside [1, max]. */
export function scaleRun(client: Client, runId: string, workers: number): Promise<number> {
  return runHandle(client, runId).executeUpdate(scaleUpdate, { args: [workers] });
}
