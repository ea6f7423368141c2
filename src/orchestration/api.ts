/**
 * Contracts of the durable-run layer: the workflow's input, state and messages, and the shapes
 * activities take and return. Everything here is plain serialisable data (it passes through
 * Temporal's history); gradients, data and weights never do, only checkpoint URIs and summaries.
 *
 * The workflow imports this file, so it must stay free of Node and tfjs imports.
 */

/** Task queue of rank `rank` of run `runId`: that rank's Temporal worker polls it. */
export function rankTaskQueue(runId: string, rank: number): string {
  return `bbn-worker-${runId}-${rank}`;
}

/**
 * Task queue of run `runId`'s coordinator: the process hosting the workflow polls it, with the
 * workflow itself and the coordinator's activities (plans, the rendezvous of each generation).
 */
export function coordinatorTaskQueue(runId: string): string {
  return `bbn-coordinator-${runId}`;
}

/** Workflow id of run `runId` (one workflow per run, so `status RUN` can find it). */
export function runWorkflowId(runId: string): string {
  return `bbn-run-${runId}`;
}

/** Name of the training workflow type. */
export const TRAINING_WORKFLOW = 'bbnTraining';

/** Default upper bound for `scale(W)` when the input does not give one. */
export const DEFAULT_MAX_WORKERS = 64;

/** Timeouts of the workflow's activities (ms); see {@link DEFAULT_TIMEOUTS} for why each value. */
export interface RunTimeouts {
  /** A rank that stops heartbeating this long is declared dead and its attempt fails. */
  readonly heartbeatMs: number;
  /** Bound on a rank's worker picking up its task (a worker that never comes fails the epoch). */
  readonly scheduleToStartMs: number;
  /** Bound on one attempt of a short activity (plan, evaluate and checkpoint, prepare, finish). */
  readonly shortActivityMs: number;
  /** Bound on one attempt of one epoch of training on one rank. */
  readonly epochMs: number;
  /** Bound on gathering a generation: every rank heartbeating to the coordinator. */
  readonly rendezvousMs: number;
}

/**
 * Defaults: heartbeat 10 s. Every rank computes on its compute thread, so its main thread
 * heartbeats every second (the worker's `maxHeartbeatThrottleInterval`) however long a step is;
 * this timeout is the backstop for ranks no supervisor watches (a supervisor reports a lost rank
 * within seconds through the `rankLost` signal). Schedule-to-start 10 min bounds start-up
 * (a rank that never registers fails the epoch rather than hanging). Short activities 10 min
 * (evaluation of a large test set). An epoch may legitimately take hours: 24 h, with liveness
 * carried by the heartbeat, not by this bound. Rendezvous 5 min: a replaced rank (a new pod, a
 * cold image) must be heartbeating by then; the missing ranks are named when it fails.
 */
export const DEFAULT_TIMEOUTS: RunTimeouts = {
  heartbeatMs: 10_000,
  scheduleToStartMs: 10 * 60_000,
  shortActivityMs: 10 * 60_000,
  epochMs: 24 * 3_600_000,
  rendezvousMs: 5 * 60_000,
};

/** The workflow's own retry budget for restarting an epoch after a failed attempt. */
export interface RestartPolicy {
  /** Restarts allowed over the whole run (kept in workflow state, so it survives continue-as-new). */
  readonly maxRestarts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

/** Default restart budget: 5 restarts, backoff 1 s doubling to 60 s. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  maxRestarts: 5,
  initialBackoffMs: 1_000,
  maxBackoffMs: 60_000,
};

/** What the workflow carries across continue-as-new (and nothing else). */
export interface CarriedState {
  /** Next epoch to train. */
  readonly nextEpoch: number;
  readonly generation: number;
  readonly restartsUsed: number;
  readonly failures: readonly FailureRecord[];
  readonly epochs: readonly EpochSummary[];
  readonly checkpoint: string | null;
  readonly workers: number;
  readonly paused: boolean;
  /** A restart's generation had not trained yet (absent: false). */
  readonly restartUntrained?: boolean;
}

/** Input of the `bbnTraining` workflow. */
export interface TrainingInput {
  readonly runId: string;
  /** The run configuration as a plain object (validated by the workflow with `parseRunConfig`). */
  readonly config: unknown;
  readonly outDir: string;
  /** World size W (number of ranks). */
  readonly workers: number;
  /** Continue from the newest good checkpoint in `outDir`. */
  readonly resume?: boolean;
  /** Upper bound of `scale(W)`; default {@link DEFAULT_MAX_WORKERS}. */
  readonly maxWorkers?: number;
  readonly timeouts?: Partial<RunTimeouts>;
  readonly restart?: Partial<RestartPolicy>;
  /** Continue-as-new after this many epochs in one execution even if Temporal does not suggest it. */
  readonly epochsPerExecution?: number;
  /** Set by the workflow itself when it continues as new. */
  readonly carried?: CarriedState;
}

/** Lifecycle of a run. Transitions: planning → training → evaluating → (planning | paused | completed); any → restarting → planning; paused → planning (resume); any → stopping → cancelled; any → failed. */
export type RunState =
  | 'preparing'
  | 'planning'
  | 'training'
  | 'evaluating'
  | 'paused'
  | 'restarting'
  | 'stopping'
  | 'cancelled'
  | 'completed'
  | 'failed';

/** The coordinator's summary of an epoch's plan (the plan itself stays with the coordinator). */
export interface EpochPlanSummary {
  readonly epoch: number;
  readonly alpha: number | null;
  readonly lr: number;
  readonly steps: number;
  /**
   * `planDigest` of the coordinator's plan: every rank derives its shard from the same seeded
   * samplers and refuses to train when its own plan's digest differs (absent in old histories).
   */
  readonly digest?: string;
}

/** Metrics of one finished epoch, as the workflow records them. */
export interface EpochSummary {
  readonly epoch: number;
  readonly alpha: number | null;
  readonly lr: number;
  readonly trainLoss: number;
  readonly testTop1: number;
  readonly many: number | null;
  readonly medium: number | null;
  readonly few: number | null;
  readonly checkpoint: string;
}

/** One failed attempt, in the run's failure log. */
export interface FailureRecord {
  readonly epoch: number;
  readonly generation: number;
  /** The first failing rank, when the failure came from a rank's activity. */
  readonly rank: number | null;
  readonly message: string;
  /** How that rank was lost, when a supervisor or the coordinator reported it. */
  readonly cause?: RankLost['cause'];
}

/**
 * Input of the `rankLost` signal: what a local supervisor saw (`frozen`: its health endpoint went
 * unanswered; `exited`), or what the coordinator saw (`silent`: no heartbeat for 4 s).
 */
export interface RankLost {
  readonly rank: number;
  readonly cause: 'frozen' | 'exited' | 'silent';
  /** For people, e.g. "frozen: no answer from its health endpoint for 3.0 s (pid 42); killed and replaced". */
  readonly detail: string;
  /**
   * The generation the rank was lost from, when the reporter knows it (the coordinator's watched
   * generation). A report of a generation older than the running one came late: the restart it
   * caused has already happened, so it only names that restart's cause.
   */
  readonly generation?: number;
}

/** Answer of the `progress` query. */
export interface RunProgress {
  readonly runId: string;
  readonly state: RunState;
  readonly epoch: number;
  readonly totalEpochs: number;
  /** Last heartbeat step seen by the workflow is not tracked (heartbeats are not history); steps of the epoch. */
  readonly steps: number;
  readonly alpha: number | null;
  readonly lr: number | null;
  readonly lastMetrics: EpochSummary | null;
  readonly checkpoint: string | null;
  readonly workers: number;
  /** W' requested by `scale`, applied at the next epoch boundary. */
  readonly pendingWorkers: number | null;
  readonly generation: number;
  readonly restartsUsed: number;
  readonly failures: readonly FailureRecord[];
  readonly pauseRequested: boolean;
  /** Ranks of the epoch in flight that a supervisor reported lost (the generation is being restarted). */
  readonly lost?: readonly RankLost[];
}

/** Result of the workflow. */
export interface TrainingResult {
  readonly runId: string;
  readonly state: 'completed' | 'cancelled';
  readonly epochs: readonly EpochSummary[];
  readonly checkpoint: string | null;
  readonly generation: number;
}

/** Fields every activity request carries: which run, and the generation for fencing. */
export interface RunRef {
  readonly runId: string;
  readonly outDir: string;
  readonly config: unknown;
  readonly generation: number;
}

/** Input of `prepareRun`. */
export interface PrepareRequest extends RunRef {
  readonly resume: boolean;
}

/** Where a run starts: the next epoch to train and the checkpoint it continues from. */
export interface PrepareResult {
  readonly startEpoch: number;
  readonly checkpoint: string | null;
}

/** Input of `planEpoch`. */
export interface PlanRequest extends RunRef {
  readonly epoch: number;
  readonly workers: number;
}

/** Input of `formGeneration`: gather ranks 0..world-1 (a new generation's ring). */
export interface GenerationRequest extends RunRef {
  readonly world: number;
  /** Give up after this long, naming the ranks never heard from. */
  readonly timeoutMs: number;
}

/** Input of `trainEpoch` (one rank). */
export interface TrainRequest extends RunRef {
  readonly epoch: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly plan: EpochPlanSummary;
  /** Ring peer address of every rank (indexed by rank), from `formGeneration`; absent when W = 1. */
  readonly peers?: readonly string[];
}

/** Heartbeat details of `trainEpoch`: where the rank is (a retry resumes from here or from the last checkpoint). */
export interface TrainHeartbeat {
  readonly rank: number;
  readonly epoch: number;
  readonly step: number;
  readonly generation: number;
  /** Moving averages of this rank's step: compute, and waiting in the allreduce (seconds; absent before the first step). */
  readonly computeSeconds?: number;
  readonly reduceSeconds?: number;
}

/** Heartbeat details of `formGeneration`: the ranks the rendezvous still waits for. */
export interface RendezvousHeartbeat {
  readonly phase: 'rendezvous';
  readonly generation: number;
  readonly world: number;
  /** Ranks not heard from since the rendezvous began. */
  readonly missing: readonly number[];
}

/** Result of `trainEpoch` on one rank (global numbers: identical on every rank). */
export interface TrainResult {
  readonly epoch: number;
  readonly rank: number;
  readonly steps: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly seconds: number;
  /** SHA-256 (hex) of the rank's weights after the epoch: every rank must report the same. */
  readonly paramsDigest?: string;
}

/** Input of `evaluateAndCheckpoint` (rank 0). */
export interface EvaluateRequest extends RunRef {
  readonly epoch: number;
  readonly train: TrainResult;
  readonly plan: EpochPlanSummary;
}

/** Input of `checkpointNow` (rank 0): a clean stop's final checkpoint. */
export interface CheckpointRequest extends RunRef {
  readonly epoch: number;
}

/** Input of `finishRun` (rank 0): write the run's summary. */
export interface FinishRequest extends RunRef {
  readonly seconds: number;
}

/**
 * The coordinator's activities, on the coordinator's queue (the process hosting the workflow):
 * the epoch's plan from the global samplers (α, lr, steps and digest: the broadcast every rank's
 * `trainEpoch` carries and checks), and the rendezvous of a generation from the ranks' heartbeats.
 */
export interface CoordinatorActivities {
  planEpoch(req: PlanRequest): Promise<EpochPlanSummary>;
  /** Every rank's ring address once ranks 0..world-1 all heartbeat; from then on they are watched. */
  formGeneration(req: GenerationRequest): Promise<string[]>;
}

/**
 * A rank's activities, on that rank's own queue: `trainEpoch` on every rank; prepare, evaluate,
 * checkpoint and finish on rank 0 (it holds the model the run directory records).
 */
export interface RankActivities {
  prepareRun(req: PrepareRequest): Promise<PrepareResult>;
  trainEpoch(req: TrainRequest): Promise<TrainResult>;
  evaluateAndCheckpoint(req: EvaluateRequest): Promise<EpochSummary>;
  checkpointNow(req: CheckpointRequest): Promise<string | null>;
  finishRun(req: FinishRequest): Promise<void>;
}

/** Every activity the workflow calls (`import type`d by the workflow). */
export type TrainingActivities = CoordinatorActivities & RankActivities;

/** Error types the workflow and activities raise as non-retryable `ApplicationFailure`s. */
export const FAILURE_TYPES = {
  config: 'ConfigError',
  staleGeneration: 'StaleGenerationError',
  unsupported: 'UnsupportedError',
  budget: 'RestartBudgetExhausted',
  /** The ranks' weights differ after an epoch (a bug or nondeterministic hardware): never retried. */
  diverged: 'ReplicasDiverged',
  /**
   * "This process no longer holds the state the request continues from" (it restarted between
   * `trainEpoch` and `evaluateAndCheckpoint`). Raised retryable, but listed so Temporal does not
   * retry it in place: the workflow restarts the epoch from the last checkpoint instead.
   */
  positionLost: 'PositionLostError',
} as const;
