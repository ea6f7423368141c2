/**
 * Contracts of the event layer: the NATS subjects, the one serialisable {@link TrainingEvent}
 * type every party publishes, the run status kept in the `bbn-runs` key-value bucket, and the
 * layer's errors.
 *
 * Subjects (one run = one `runId`, a NATS-token-safe string):
 *
 * | subject                   | kinds                                                  | rate                    |
 * |---------------------------|--------------------------------------------------------|-------------------------|
 * | `bbn.run.<runId>.metrics` | `step`                                                 | throttled per source    |
 * | `bbn.run.<runId>.epoch`   | `alpha`, `epoch-start`, `epoch-end`, `checkpoint`, `run-end` | a few per epoch   |
 * | `bbn.run.<runId>.worker`  | `worker-join`, `worker-leave`, `worker-failed`, `heartbeat` | membership, ~1/s  |
 *
 * `bbn.run.<runId>.>` watches one run; `bbn.run.*.epoch` watches every run's progress.
 *
 * Who publishes (src/metrics/telemetry.ts): each rank its own `step`s; the rank that owns the run
 * directory (rank 0, or `bbn train`'s trainer) `alpha` and `epoch-start` (mirrored from its first
 * step of the epoch), `epoch-end`, `checkpoint`, `run-end` and the `bbn-runs` status; the
 * coordinator the α/lr broadcast (`alpha`, `epoch-start`, when it first serves an epoch's plan)
 * and membership. Membership events (`worker-*`, `heartbeat`) name the rank they are ABOUT in
 * `source`, even when the coordinator publishes them (a SIGKILLed rank cannot report itself), and
 * a coordinator `heartbeat` is stamped with the time of that rank's last heartbeat.
 */
import { z } from 'zod';

/** Base of this layer's errors. */
export class EventError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EventError';
  }
}

/** A received message is not a valid {@link TrainingEvent}; `field` names the first bad field. */
export class EventValidationError extends EventError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`invalid training event: ${field}: ${message}`);
    this.name = 'EventValidationError';
  }
}

/**
 * The NATS server has no JetStream (nats-server started without `-js`, or the account lacks it):
 * the run's key-value bucket cannot be read. A user's setup, so one line for the CLI.
 */
export class JetStreamUnavailableError extends EventError {
  readonly userFacing = true;
  constructor(server: string, options?: { cause?: unknown }) {
    super(
      `the NATS server at ${server} has no JetStream (start nats-server with -js): the run list is its key-value bucket ${RUNS_BUCKET}`,
      options,
    );
    this.name = 'JetStreamUnavailableError';
  }
}

/** A run id that cannot be a NATS subject token or KV key. */
export class RunIdError extends EventError {
  constructor(readonly runId: string) {
    super(
      `runId (${JSON.stringify(runId)}) must match [A-Za-z0-9_-]{1,128} (a NATS subject token and KV key)`,
    );
    this.name = 'RunIdError';
  }
}

const RUN_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** Throws {@link RunIdError} unless `runId` is safe as a subject token and a KV key. */
export function checkRunId(runId: string): string {
  if (!RUN_ID.test(runId)) throw new RunIdError(runId);
  return runId;
}

/** The three per-run subject families. */
export type SubjectFamily = 'metrics' | 'epoch' | 'worker';

/** `bbn.run.<runId>.<family>`. */
export function runSubject(runId: string, family: SubjectFamily): string {
  return `bbn.run.${checkRunId(runId)}.${family}`;
}

/** Wildcard for every event of one run. */
export function runWildcard(runId: string): string {
  return `bbn.run.${checkRunId(runId)}.>`;
}

/** Name of the JetStream key-value bucket holding each run's {@link RunStatus}. */
export const RUNS_BUCKET = 'bbn-runs';

const num = z.number().refine(Number.isFinite, 'must be a finite number');
const maybeNum = num.nullable();
const count = z.number().int().nonnegative();

const sourceSchema = z.object({
  role: z.enum(['worker', 'coordinator', 'trainer', 'workflow', 'cli']),
  /** Worker rank; null for parties that have none. */
  rank: count.nullable(),
});

const base = {
  runId: z.string().regex(RUN_ID),
  source: sourceSchema,
  /** Milliseconds since the Unix epoch, from the publisher's clock. */
  timestamp: num,
};

const ev = <K extends string, M extends z.ZodRawShape>(kind: K, metadata: M) =>
  z.object({ kind: z.literal(kind), ...base, metadata: z.object(metadata).strict() }).strict();

/** zod schema of {@link TrainingEvent}: what `parseTrainingEvent` checks on receive. */
export const trainingEventSchema = z.discriminatedUnion('kind', [
  ev('step', {
    epoch: count,
    step: count,
    loss: num,
    alpha: maybeNum,
    lr: num,
    stepsPerSecond: num,
    samplesPerSecond: num,
    /** Share of step wall time spent in allreduce, in [0, 1]. */
    allreduceShare: num.refine((x) => x >= 0 && x <= 1, 'must be in [0, 1]'),
  }),
  ev('alpha', { epoch: count, alpha: maybeNum, lr: num }),
  ev('epoch-start', { epoch: count, steps: count }),
  ev('epoch-end', {
    epoch: count,
    trainLoss: num,
    top1: num,
    many: maybeNum,
    medium: maybeNum,
    few: maybeNum,
    seconds: num,
  }),
  ev('checkpoint', { epoch: count, uri: z.string().min(1) }),
  ev('run-end', { state: z.enum(['completed', 'failed', 'cancelled']), reason: z.string().nullable() }),
  ev('worker-join', { worldSize: count }),
  ev('worker-leave', { worldSize: count }),
  ev('worker-failed', { reason: z.string() }),
  ev('heartbeat', { epoch: count, step: count }),
]);

/**
 * The one event type of the system: kind, run, source, timestamp and flat primitive metadata.
 * Plain JSON on the wire, so any NATS client can read it.
 */
export type TrainingEvent = z.infer<typeof trainingEventSchema>;
/** The `kind` of a {@link TrainingEvent}. */
export type TrainingEventKind = TrainingEvent['kind'];
/** Who published an event. */
export type EventSource = TrainingEvent['source'];
/** The event of one kind. */
export type EventOf<K extends TrainingEventKind> = Extract<TrainingEvent, { kind: K }>;

/** The subject family each kind is published on. */
export function familyOf(kind: TrainingEventKind): SubjectFamily {
  switch (kind) {
    case 'step':
      return 'metrics';
    case 'alpha':
    case 'epoch-start':
    case 'epoch-end':
    case 'checkpoint':
    case 'run-end':
      return 'epoch';
    case 'worker-join':
    case 'worker-leave':
    case 'worker-failed':
    case 'heartbeat':
      return 'worker';
  }
}

/** The subject an event goes to. */
export function subjectOf(event: TrainingEvent): string {
  return runSubject(event.runId, familyOf(event.kind));
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Wire form: UTF-8 JSON. */
export function encodeTrainingEvent(event: TrainingEvent): Uint8Array {
  return encoder.encode(JSON.stringify(event));
}

/** Checks an already-parsed value; throws {@link EventValidationError} naming the first bad field. */
export function validateTrainingEvent(value: unknown): TrainingEvent {
  const r = trainingEventSchema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new EventValidationError(issue.path.join('.') || '(root)', issue.message);
}

/** Decodes and validates a received message. */
export function parseTrainingEvent(data: Uint8Array | string): TrainingEvent {
  let value: unknown;
  try {
    value = JSON.parse(typeof data === 'string' ? data : decoder.decode(data));
  } catch (err) {
    throw new EventValidationError('(root)', `not JSON: ${(err as Error).message}`);
  }
  return validateTrainingEvent(value);
}

/** A run's state as the `bbn-runs` bucket holds it (key: the run id). */
export const runStatusSchema = z
  .object({
    runId: z.string().regex(RUN_ID),
    state: z.enum(['starting', 'running', 'paused', 'completed', 'failed', 'cancelled']),
    epoch: count,
    epochs: count.nullable(),
    step: count,
    bestTop1: maybeNum,
    /** Milliseconds since the Unix epoch. */
    updatedAt: num,
  })
  .strict();

/** One run's status in the `bbn-runs` bucket. */
export type RunStatus = z.infer<typeof runStatusSchema>;

/** Decodes and validates a KV entry. */
export function parseRunStatus(data: Uint8Array | string): RunStatus {
  let value: unknown;
  try {
    value = JSON.parse(typeof data === 'string' ? data : decoder.decode(data));
  } catch (err) {
    throw new EventValidationError('(root)', `run status is not JSON: ${(err as Error).message}`);
  }
  const r = runStatusSchema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new EventValidationError(issue.path.join('.') || '(root)', issue.message);
}
