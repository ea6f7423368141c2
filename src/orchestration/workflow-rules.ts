/**
 * The rules the `bbnTraining` workflow applies to its input and to failures: validation of the
 * input (a bad one is a non-retryable ConfigError), the restart backoff, and how a rank's failure
 * is named (the first failing rank, the innermost cause). Runs in the workflow sandbox: imports
 * only `@temporalio/workflow`, pure core modules and this layer's own types.
 */
import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import { ConfigError, parseRunConfig } from '../core/config.ts';
import { totalEpochs } from '../core/methods.ts';
import {
  DEFAULT_MAX_WORKERS,
  DEFAULT_RESTART_POLICY,
  DEFAULT_TIMEOUTS,
  FAILURE_TYPES,
  type RestartPolicy,
  type RunTimeouts,
  type TrainingInput,
} from './api.ts';

/** Validated workflow parameters (a bad input is a non-retryable ConfigError). */
export interface Validated {
  readonly totalEpochs: number;
  readonly maxWorkers: number;
  readonly timeouts: RunTimeouts;
  readonly restart: RestartPolicy;
}

/**
 * The workflow sandbox has no `structuredClone`; core's `parseRunConfig` deep-copies its result
 * (plain JSON data) with it, for which a JSON round trip is the same copy. Installed per call
 * because sandbox globals may be per-workflow.
 */
function ensureStructuredClone(): void {
  if (typeof globalThis.structuredClone !== 'function') {
    globalThis.structuredClone = (<T>(value: T): T =>
      JSON.parse(JSON.stringify(value))) as typeof structuredClone;
  }
}

export function validate(input: TrainingInput): Validated {
  ensureStructuredClone();
  const bad = (msg: string) => ApplicationFailure.nonRetryable(msg, FAILURE_TYPES.config);
  if (typeof input.runId !== 'string' || !/^[A-Za-z0-9._-]+$/.test(input.runId)) {
    throw bad(
      `TrainingInput.runId (${JSON.stringify(input.runId)}) must be a non-empty [A-Za-z0-9._-] string`,
    );
  }
  if (typeof input.outDir !== 'string' || input.outDir === '') {
    throw bad(`TrainingInput.outDir (${JSON.stringify(input.outDir)}) must be a non-empty path`);
  }
  const maxWorkers = input.maxWorkers ?? DEFAULT_MAX_WORKERS;
  if (!Number.isInteger(input.workers) || input.workers < 1 || input.workers > maxWorkers) {
    throw bad(`TrainingInput.workers (${input.workers}) must be an integer in [1, ${maxWorkers}]`);
  }
  let epochs: number;
  try {
    epochs = totalEpochs(parseRunConfig(input.config, `run ${input.runId} config`));
  } catch (err) {
    if (err instanceof ConfigError) throw bad(err.message);
    throw err;
  }
  return {
    totalEpochs: epochs,
    maxWorkers,
    timeouts: { ...DEFAULT_TIMEOUTS, ...input.timeouts },
    restart: { ...DEFAULT_RESTART_POLICY, ...input.restart },
  };
}

/** Backoff before restart number `n` (1-based): initial · 2^(n-1), capped. */
export function restartBackoffMs(policy: RestartPolicy, n: number): number {
  return Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** Math.max(0, n - 1));
}

/** A rank's failure, tagged so the run's failure log names the first failing rank. */
export class RankFailure extends Error {
  constructor(
    readonly rank: number,
    override readonly cause: unknown,
  ) {
    super(`rank ${rank}: ${rootMessage(cause)}`);
  }
}

/**
 * What the workflow throws when it ends failed. Temporal fails the workflow only for its own
 * failure types; any other error (a {@link RankFailure} is a plain Error) fails the workflow task,
 * which is retried forever: a run whose rank failed for good (bad data, a diverged step) would
 * hang instead of ending. So a rank's failure leaves as a non-retryable ApplicationFailure carrying
 * the rank's own failure as its cause (what the CLI names, and classifies by its type).
 */
export function asWorkflowFailure(err: unknown): unknown {
  if (!(err instanceof RankFailure)) return err;
  return ApplicationFailure.create({
    message: err.message,
    type: 'RankFailure',
    nonRetryable: true,
    cause: err.cause instanceof Error ? err.cause : undefined,
  });
}

/** The innermost cause's message ("Activity task failed" wraps the rank's real error). */
export function rootMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e?.cause !== undefined && e.cause !== null) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

export function isNonRetryable(err: unknown): boolean {
  const inner = err instanceof RankFailure ? err.cause : err;
  const cause = inner instanceof ActivityFailure ? inner.cause : inner;
  return cause instanceof ApplicationFailure && cause.nonRetryable === true;
}
