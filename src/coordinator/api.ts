/**
 * Contracts of the coordinator layer: the injected clock, the run it serves, and the error family
 * every coordinator failure is reported through. Errors cross the wire as gRPC status codes and
 * are converted in exactly one place each way (`toStatus` on the server, `fromStatus` on clients),
 * as proto/bbn/v1/coordinator.proto specifies.
 */
import { status as GrpcStatus, Metadata, type StatusObject } from '@grpc/grpc-js';
import type { RunConfig } from '../core/config.ts';

/** Milliseconds on a monotonic scale; injected so decisions are testable (never Date.now here). */
export interface Clock {
  /** Current time in milliseconds. */
  now(): number;
}

/** Where a resumed run starts; all of it comes from the last checkpoint. */
export interface ResumePoint {
  /** Epoch to resume at, 1-based. */
  readonly epoch: number;
  /** Step within `epoch` to resume at, 0-based. */
  readonly step: number;
  /** Checkpoint every rank loads before training. */
  readonly checkpointUri: string;
}

/** Everything a coordinator derives its plans from: nothing else is kept across restarts. */
export interface CoordinatorRun {
  /** Training run id; requests naming another run get NOT_FOUND. */
  readonly runId: string;
  /** The run config (seed, method, batch size, schedules, `distributed.workers`). */
  readonly cfg: RunConfig;
  /** Training label of every dataset position. */
  readonly labels: Int32Array;
  /** Number of classes. */
  readonly numClasses: number;
  /** Resume point, when the run continues from a checkpoint. */
  readonly resume?: ResumePoint;
}

/** Timing of membership: heartbeats, death detection and the rendezvous deadline. */
export interface MembershipTimings {
  /** How often ranks must heartbeat. */
  readonly heartbeatIntervalMs: number;
  /** Silence after which a rank is declared dead. */
  readonly heartbeatTimeoutMs: number;
  /** Time from the first Join of a generation until the rendezvous fails. */
  readonly rendezvousTimeoutMs: number;
}

/** Defaults: 1 s heartbeats, dead after 5 s of silence, 60 s to gather every rank. */
export const DEFAULT_TIMINGS: MembershipTimings = {
  heartbeatIntervalMs: 1_000,
  heartbeatTimeoutMs: 5_000,
  rendezvousTimeoutMs: 60_000,
};

/** gRPC status codes the coordinator speaks (a subset of grpc.status). */
export type CoordinatorCode =
  | GrpcStatus.INVALID_ARGUMENT
  | GrpcStatus.NOT_FOUND
  | GrpcStatus.FAILED_PRECONDITION
  | GrpcStatus.ALREADY_EXISTS
  | GrpcStatus.DEADLINE_EXCEEDED
  | GrpcStatus.ABORTED
  | GrpcStatus.UNAVAILABLE
  | GrpcStatus.INTERNAL;

/** Root of the coordinator error family; `code` is the gRPC status it travels as. */
export class CoordinatorError extends Error {
  override name = 'CoordinatorError';
  /** gRPC status code of this error on the wire. */
  readonly code: CoordinatorCode;
  constructor(code: CoordinatorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** A malformed request (INVALID_ARGUMENT): the message names the field and its value. */
export class InvalidRequestError extends CoordinatorError {
  override name = 'InvalidRequestError';
  constructor(message: string) {
    super(GrpcStatus.INVALID_ARGUMENT, message);
  }
}

/** A request for a run this coordinator does not serve (NOT_FOUND). */
export class UnknownRunError extends CoordinatorError {
  override name = 'UnknownRunError';
  constructor(message: string) {
    super(GrpcStatus.NOT_FOUND, message);
  }
}

/**
 * A request that disagrees with the run (FAILED_PRECONDITION): a stale generation (fencing), or a
 * model signature, config digest or world size that differs from the others'.
 */
export class PreconditionError extends CoordinatorError {
  override name = 'PreconditionError';
  constructor(message: string) {
    super(GrpcStatus.FAILED_PRECONDITION, message);
  }
}

/** A declared rank already held by another worker (ALREADY_EXISTS). */
export class RankTakenError extends CoordinatorError {
  override name = 'RankTakenError';
  constructor(message: string) {
    super(GrpcStatus.ALREADY_EXISTS, message);
  }
}

/** The rendezvous did not complete in time (DEADLINE_EXCEEDED); lists what was missing. */
export class RendezvousTimeoutError extends CoordinatorError {
  override name = 'RendezvousTimeoutError';
  constructor(
    message: string,
    /** Ranks that never joined (empty when parsed from the wire). */
    readonly missingRanks: readonly number[] = [],
  ) {
    super(GrpcStatus.DEADLINE_EXCEEDED, message);
  }
}

/** The run or the coordinator stopped (ABORTED). */
export class RunStoppedError extends CoordinatorError {
  override name = 'RunStoppedError';
  constructor(message: string) {
    super(GrpcStatus.ABORTED, message);
  }
}

/** The coordinator could not be reached, or failed unexpectedly (UNAVAILABLE / INTERNAL). */
export class CoordinatorUnavailableError extends CoordinatorError {
  override name = 'CoordinatorUnavailableError';
}

/** Turns any error thrown by a handler into the gRPC status the caller sees (unknown → INTERNAL). */
export function toStatus(err: unknown): Partial<StatusObject> & { code: GrpcStatus; details: string } {
  if (err instanceof CoordinatorError)
    return { code: err.code, details: err.message, metadata: new Metadata() };
  const details = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return {
    code: GrpcStatus.INTERNAL,
    details: `coordinator internal error: ${details}`,
    metadata: new Metadata(),
  };
}

/** Turns a gRPC error received by a client into the typed coordinator error. */
export function fromStatus(err: { code?: number; details?: string; message?: string }): CoordinatorError {
  const details = err.details ?? err.message ?? 'no details';
  switch (err.code) {
    case GrpcStatus.INVALID_ARGUMENT:
      return new InvalidRequestError(details);
    case GrpcStatus.NOT_FOUND:
      return new UnknownRunError(details);
    case GrpcStatus.FAILED_PRECONDITION:
      return new PreconditionError(details);
    case GrpcStatus.ALREADY_EXISTS:
      return new RankTakenError(details);
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new RendezvousTimeoutError(details);
    case GrpcStatus.ABORTED:
    case GrpcStatus.CANCELLED:
      return new RunStoppedError(details);
    case GrpcStatus.UNAVAILABLE:
      return new CoordinatorUnavailableError(GrpcStatus.UNAVAILABLE, details, { cause: err });
    default:
      return new CoordinatorUnavailableError(GrpcStatus.INTERNAL, details, { cause: err });
  }
}
