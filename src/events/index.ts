/**
 * `events`: what many parties watch, over NATS. One serialisable {@link TrainingEvent} type on
 * three per-run subjects (`bbn.run.<runId>.metrics|epoch|worker`, see api.ts), a best-effort
 * bounded publisher for the training path, run statuses in the `bbn-runs` key-value bucket, and
 * the pure state of a live watch view.
 */
export {
  checkRunId,
  EventError,
  type EventOf,
  type EventSource,
  EventValidationError,
  encodeTrainingEvent,
  familyOf,
  JetStreamUnavailableError,
  parseRunStatus,
  parseTrainingEvent,
  RUNS_BUCKET,
  RunIdError,
  type RunStatus,
  runStatusSchema,
  runSubject,
  runWildcard,
  type SubjectFamily,
  subjectOf,
  type TrainingEvent,
  type TrainingEventKind,
  trainingEventSchema,
  validateTrainingEvent,
} from './api.ts';
export {
  type FailureSnapshot,
  type MembershipMemory,
  type MembershipSnapshot,
  membershipEvents,
  type RankSnapshot,
} from './membership.ts';
export {
  EventPublisher,
  type EventSink,
  NullEventSink,
  type PublisherOptions,
  type PublisherStats,
} from './publisher.ts';
export { listRunStatuses, type RunHandlers, subscribeRun } from './subscriber.ts';
export { applyEvent, emptyWatchState, type WatchState, type WorkerView } from './watch-state.ts';
