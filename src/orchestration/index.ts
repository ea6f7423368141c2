/**
 * `orchestration`: durable training runs with Temporal. The `bbnTraining` workflow (workflows.ts,
 * bundled by the worker, never imported here), its messages, the activities over injected deps,
 * the local W=1 deps, the Temporal worker factory and the client helpers.
 *
 * Client-only callers (CLI submit/status) should import client.ts and messages.ts directly:
 * this index also loads local.ts, which loads tfjs.
 */
export { createActivities, type RankControl, type TrainingDeps } from './activities.ts';
export {
  type CarriedState,
  type CheckpointRequest,
  DEFAULT_MAX_WORKERS,
  DEFAULT_RESTART_POLICY,
  DEFAULT_TIMEOUTS,
  type EpochPlanSummary,
  type EpochSummary,
  type EvaluateRequest,
  FAILURE_TYPES,
  type FailureRecord,
  type FinishRequest,
  type PlanRequest,
  type PrepareRequest,
  type PrepareResult,
  type RestartPolicy,
  type RunProgress,
  type RunRef,
  type RunState,
  type RunTimeouts,
  rankTaskQueue,
  runWorkflowId,
  TRAINING_WORKFLOW,
  type TrainHeartbeat,
  type TrainingActivities,
  type TrainingInput,
  type TrainingResult,
  type TrainRequest,
  type TrainResult,
} from './api.ts';
export {
  cancelRun,
  pauseRun,
  type RankStatus,
  type RunStatus,
  resumeRun,
  runHandle,
  runStatus,
  scaleRun,
  startRun,
  type TrainingWorkflow,
} from './client.ts';
export { createLocalDeps, type LocalDepsOptions } from './local.ts';
export { cancelSignal, pauseSignal, progressQuery, resumeSignal, scaleUpdate } from './messages.ts';
export {
  createTrainingWorker,
  type TrainingWorkerOptions,
  trainingWorkflowBundle,
  WORKFLOWS_PATH,
  writeWorkflowBundle,
} from './worker.ts';
