/**
 * The workflow's activities, built from injected dependencies (`createActivities(deps)`), so a
 * Temporal worker can plug in the in-process trainer (local.ts), the multi-process worker, or a
 * test's plain object. This file owns the Temporal side of every call: heartbeats from the very
 * start (setup included), the previous attempt's heartbeat details, and cancellation.
 */
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import type {
  CheckpointRequest,
  EpochPlanSummary,
  EpochSummary,
  EvaluateRequest,
  FinishRequest,
  PlanRequest,
  PrepareRequest,
  PrepareResult,
  RingRequest,
  TrainHeartbeat,
  TrainingActivities,
  TrainRequest,
  TrainResult,
} from './api.ts';

/** What a rank's training gets from the activity around it. */
export interface RankControl {
  /** Heartbeat details of the previous attempt of this activity (undefined on the first). */
  readonly previous: TrainHeartbeat | undefined;
  /** Reports progress (throttled by the SDK); call after every step, with its compute and allreduce times. */
  heartbeat(step: number, times?: { computeSeconds: number; reduceSeconds: number }): void;
  /** Aborted when the workflow cancels this attempt (or the worker shuts down). */
  readonly signal: AbortSignal;
  /** True once cancelled: stop after the current step. */
  shouldStop(): boolean;
}

/**
 * What the activities need from the training side. The local implementation is
 * `createLocalDeps` (local.ts); the multi-process worker provides the same interface, with
 * `trainEpochOnRank` driving that rank's process and the rest talking to the coordinator.
 */
export interface TrainingDeps {
  prepareRun(req: PrepareRequest): Promise<PrepareResult>;
  planEpoch(req: PlanRequest): Promise<EpochPlanSummary>;
  /** This rank's ring peer address (starting its peer server if needed). */
  ringAddress(req: RingRequest): Promise<string>;
  /**
   * Trains epoch `req.epoch` on rank `req.rank` and resolves when the epoch is complete; if
   * `ctl.shouldStop()` turns true it stops after a whole step and resolves early (the activity
   * then reports cancellation). Must reject requests of an older generation than it has seen.
   */
  trainEpochOnRank(req: TrainRequest, ctl: RankControl): Promise<TrainResult>;
  evaluateAndCheckpoint(req: EvaluateRequest): Promise<EpochSummary>;
  /** Writes a checkpoint of the state in hand (a clean stop); returns its URI, or the last one. */
  checkpointNow(req: CheckpointRequest): Promise<string | null>;
  finishRun(req: FinishRequest): Promise<void>;
}

/** Step times in status are averaged over about the last five steps (one slow step is not a straggler). */
const movingAverage = (avg: number | undefined, x: number) => (avg === undefined ? x : 0.8 * avg + 0.2 * x);

/** Heartbeat interval of the keep-alive around non-step work (setup, evaluation, checkpoint writes). */
const KEEPALIVE_MS = 1_000;

/** Runs `work` with a heartbeat every second (and one right away), so setup counts as alive and cancellation arrives. */
async function withHeartbeats<T>(details: () => unknown, work: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  ctx.heartbeat(details());
  const timer = setInterval(() => ctx.heartbeat(details()), KEEPALIVE_MS);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** The activities of the `bbnTraining` workflow over `deps`. */
export function createActivities(deps: TrainingDeps): TrainingActivities {
  return {
    prepareRun: (req) =>
      withHeartbeats(
        () => ({ phase: 'prepare' }),
        () => deps.prepareRun(req),
      ),
    planEpoch: (req) =>
      withHeartbeats(
        () => ({ phase: 'plan', epoch: req.epoch }),
        () => deps.planEpoch(req),
      ),
    ringAddress: (req) =>
      withHeartbeats(
        () => ({ phase: 'rendezvous', rank: req.rank }),
        () => deps.ringAddress(req),
      ),
    async trainEpoch(req) {
      const ctx = Context.current();
      const previous = ctx.info.heartbeatDetails as TrainHeartbeat | undefined;
      let step = previous?.epoch === req.epoch ? previous.step : 0;
      let computeSeconds: number | undefined;
      let reduceSeconds: number | undefined;
      const details = (): TrainHeartbeat => ({
        rank: req.rank,
        epoch: req.epoch,
        step,
        generation: req.generation,
        computeSeconds,
        reduceSeconds,
      });
      const ctl: RankControl = {
        previous,
        heartbeat(s, times) {
          step = s;
          if (times) {
            computeSeconds = movingAverage(computeSeconds, times.computeSeconds);
            reduceSeconds = movingAverage(reduceSeconds, times.reduceSeconds);
          }
          ctx.heartbeat(details());
        },
        signal: ctx.cancellationSignal,
        shouldStop: () => ctx.cancellationSignal.aborted,
      };
      const result = await withHeartbeats(details, () => deps.trainEpochOnRank(req, ctl));
      if (ctx.cancellationSignal.aborted) {
        throw new CancelledFailure(
          `epoch ${req.epoch} rank ${req.rank} stopped at step ${step} on cancellation`,
        );
      }
      return result;
    },
    evaluateAndCheckpoint: (req) =>
      withHeartbeats(
        () => ({ phase: 'evaluate', epoch: req.epoch }),
        () => deps.evaluateAndCheckpoint(req),
      ),
    checkpointNow: (req) =>
      withHeartbeats(
        () => ({ phase: 'checkpoint', epoch: req.epoch }),
        () => deps.checkpointNow(req),
      ),
    finishRun: (req) =>
      withHeartbeats(
        () => ({ phase: 'finish' }),
        () => deps.finishRun(req),
      ),
  };
}
