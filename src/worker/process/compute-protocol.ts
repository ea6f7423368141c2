/**
 * The messages between a rank's main thread (gRPC: ring, coordinator, heartbeats) and its compute
 * thread (backend, data, model, trainer, and on rank 0 the run directory).
 *
 * Two kinds of exchange, both with ids:
 * - commands, main → thread (`call`), answered by `done` or `failed`; one at a time;
 * - requests the thread makes while it trains an epoch (`reduce`), answered by `reduced` or
 *   `refused`. The gradient travels as a transferred ArrayBuffer both ways: whole after the step,
 *   or, with `distributed.overlapSegmentBytes`, by segment while the backward pass goes on (then
 *   several are outstanding; the main thread reduces them one at a time, in order).
 * `step` is a one-way report after every step. Everything here is structured-clone data.
 */
import type { AllreduceTag } from '../../collective/index.ts';
import type { RunConfig } from '../../core/config.ts';
import type { BackendPreference } from '../../model/backend.ts';
import type { EpochMetrics, RunSummary } from '../run-dir.ts';
import type { EpochResult, StepReport } from '../trainer.ts';

/** What the thread is started with (its `workerData`). */
export interface ComputeInit {
  readonly cfg: RunConfig;
  /** Run directory (written by rank 0 only). */
  readonly outDir: string;
  /** This node's backend choice, over the config's `compute` (e.g. `bbn worker --backend` on a GPU node). */
  readonly compute?: { readonly backend?: BackendPreference; readonly threads?: number };
}

/**
 * Where this rank sits, and where it resumes the run. `start` may be called again (a new
 * generation or membership): the model is rebuilt from the seed and restored again.
 */
export interface StartArgs {
  readonly rank: number;
  readonly worldSize: number;
  /**
   * `latest`: restore the newest good checkpoint of the run directory, if any (a durable run; the
   * caller prepared the run directory). Otherwise rank 0's checkpoint to restore (the coordinator
   * named it at Join), or empty for a fresh run, whose directory rank 0 then creates.
   */
  readonly checkpointUri: string | { readonly latest: true };
  readonly startEpoch?: number;
  readonly startStep?: number;
}

/** Where `start` left the rank: the position it restored (epoch 0 step 0 for a fresh run). */
export interface StartResult {
  readonly resumed: boolean;
  /** Completed epochs, and steps of the next, that the restored state holds. */
  readonly epoch: number;
  readonly step: number;
  /** The checkpoint restored, and the newer ones skipped as unreadable (with the reason). */
  readonly path?: string;
  readonly rejected: readonly string[];
}

/** One epoch of training on the coordinator's plan. */
export interface TrainEpochArgs {
  readonly epoch: number;
  /** Steps of the epoch; default: the rank's own plan's. */
  readonly steps?: number;
  readonly fromStep: number;
}

/** The commands, their arguments and their results. */
export interface Commands {
  /** Builds the model and trainer; restores the checkpoint or (rank 0) creates the run directory. */
  start: { args: StartArgs; result: StartResult };
  /** The epoch's global plan, as its step count and `planDigest` (what the coordinator broadcasts). */
  plan: { args: { epoch: number }; result: { steps: number; digest: string } };
  trainEpoch: { args: TrainEpochArgs; result: EpochResult };
  /** Rank 0: evaluate, append metrics, checkpoint when due (always, with `everyEpoch`). */
  finishEpoch: { args: { result: EpochResult; everyEpoch?: boolean }; result: EpochMetrics };
  /** Rank 0: checkpoint of a stopped run; returns its path. */
  saveCheckpoint: { args: { epoch: number; step: number }; result: string };
  /** Rank 0: summary.json. */
  finishRun: { args: { seconds: number; backend: string }; result: RunSummary };
  /** SHA-256 (hex) of the parameters (the replica check after an epoch). */
  digest: { args: null; result: string };
  /** Frees the model and the recorder; the result is the tensors left alive (0 unless leaked). */
  close: { args: null; result: { numTensors: number } };
}

/** A command's name. */
export type CommandName = keyof Commands;

/** A thrown error, as it crosses the thread boundary. */
export interface ErrorInfo {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
}

/** Messages the main thread posts. */
export type MainMessage =
  | { [K in CommandName]: { type: 'call'; id: number; op: K; args: Commands[K]['args'] } }[CommandName]
  /**
   * The reduced buffer (transferred back); the piece that ends the step's wire (all of it, without
   * overlap) has one more slot, the number of ranks that want to stop.
   */
  | { type: 'reduced'; id: number; wire: Float32Array }
  | { type: 'refused'; id: number; error: ErrorInfo };

/** Messages the compute thread posts. */
export type ThreadMessage =
  | { type: 'ready'; backend: string; signature: string }
  /** Set-up (backend, data, model) failed; the thread ends. */
  | { type: 'setupFailed'; error: ErrorInfo }
  | { type: 'done'; id: number; value: unknown }
  | { type: 'failed'; id: number; error: ErrorInfo }
  /**
   * The step's wire (the gradient, the trainer's sums and one slot for the stop vote), or one piece
   * of it (`span`), transferred.
   */
  | ({ type: 'reduce'; id: number; wire: Float32Array } & ReduceTag)
  /** After each step. */
  | { type: 'step'; report: StepReport };

/**
 * Whether a reduce request's buffer ends the step's wire, whose last slot is the stop vote (the
 * whole wire without overlap; with overlap, the last piece).
 */
export function carriesStopVote(wire: Float32Array, tag: ReduceTag): boolean {
  return !tag.span || tag.span.offset + wire.length === tag.span.total;
}

/** An error as plain data. */
export function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof Error) return { name: err.name, message: err.message, stack: err.stack };
  return { name: 'Error', message: String(err) };
}

/**
 * What an allreduce is of: its step; how many leading values are gradients (bf16 on the wire when
 * the ring compresses); and, for a piece of the step's wire, where it lies in it (`Span`).
 */
export type ReduceTag = AllreduceTag;
