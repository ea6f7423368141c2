/**
 * The workflow's activities, built from injected dependencies: a rank's (`createActivities`, over
 * the rank runtime of local.ts or a test's plain object) and the coordinator's
 * (`createCoordinatorActivities`, over coordinator.ts). This file owns the Temporal side of every call: heartbeats from the very
 * start (setup included), the previous attempt's heartbeat details, and cancellation.
 */
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import type {
  CheckpointRequest,
  CoordinatorActivities,
  EpochPlanSummary,
  EpochSummary,
  EvaluateRequest,
  FinishRequest,
  GenerationRequest,
  PlanRequest,
  PrepareRequest,
  PrepareResult,
  RankActivities,
  RendezvousHeartbeat,
  TrainHeartbeat,
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

/** What a rank's activities need from its runtime; the implementation is `createLocalDeps` (local.ts). */
export interface TrainingDeps {
  prepareRun(req: PrepareRequest): Promise<PrepareResult>;
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

/** What the coordinator's activities need; the implementation is `createCoordinatorDeps` (coordinator.ts). */
export interface CoordinatorDeps {
  planEpoch(req: PlanRequest): Promise<EpochPlanSummary>;
  /** Resolves with every rank's ring address once all heartbeat; rejects when `signal` aborts. */
  formGeneration(req: GenerationRequest, signal: AbortSignal): Promise<string[]>;
  /** The ranks a rendezvous in progress still waits for (shown in status). */
  waitingFor?(): readonly number[];
}

/** The coordinator's activities over `deps`. */
export function createCoordinatorActivities(deps: CoordinatorDeps): CoordinatorActivities {
  return {
    planEpoch: (req) =>
      withHeartbeats(
        () => ({ phase: 'plan', epoch: req.epoch }),
        () => deps.planEpoch(req),
      ),
    formGeneration: (req) =>
      withHeartbeats(
        (): RendezvousHeartbeat => ({
          phase: 'rendezvous',
          generation: req.generation,
          world: req.world,
          missing: deps.waitingFor?.() ?? [],
        }),
        () => deps.formGeneration(req, Context.current().cancellationSignal),
      ),
  };
}

/** A rank's activities over `deps`. */
export function createActivities(deps: TrainingDeps): RankActivities {
  return {
    prepareRun: (req) =>
      withHeartbeats(
        () => ({ phase: 'prepare' }),
        () => deps.prepareRun(req),
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
