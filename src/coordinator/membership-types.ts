/**
 * Data of the membership state machine (membership.ts): its state, the events it consumes and
 * the actions it emits. Plain serialisable data, replaced (never mutated) by every decision.
 */
import type { CoordinatorError, MembershipTimings } from './api.ts';

/** A Join as the state machine sees it (already checked for run id). */
export interface JoinInput {
  readonly workerId: string;
  /** Declared rank, or null to be assigned one. */
  readonly rank: number | null;
  /** World size the worker expects; 0 accepts the run's. */
  readonly worldSize: number;
  readonly modelSignature: string;
  readonly configDigest: string;
  readonly address: string;
  readonly host: string;
}

/** A joiner waiting for the rendezvous of the forming generation. */
export interface Joiner extends JoinInput {
  /** When it joined (ms). */
  readonly at: number;
}

/** One rank of the active generation. */
export interface Member {
  readonly rank: number;
  readonly workerId: string;
  readonly address: string;
  readonly host: string;
  /** Last heartbeat (or the formation time). */
  readonly lastSeen: number;
  /** Reported worker state (proto WorkerState number). */
  readonly state: number;
  readonly epoch: number;
  readonly step: number;
  /** alive → dead (silence or failure) or left (orderly Leave); never back. */
  readonly status: 'alive' | 'dead' | 'left';
}

/** A rank failure as the run's status reports it. */
export interface Failure {
  readonly generation: number;
  readonly rank: number;
  readonly host: string;
  readonly workerId: string;
  /** When it was declared (ms). */
  readonly at: number;
  readonly cause: string;
  /** False for the first failure of its generation; true for the ranks that failed after it. */
  readonly consequence: boolean;
}

/** Everything the coordinator knows about membership; plain data, replaced on every decision. */
export interface MembershipState {
  readonly worldSize: number;
  readonly timings: MembershipTimings;
  /** Last formed generation (0 before the first rendezvous). */
  readonly generation: number;
  readonly phase: 'forming' | 'active' | 'stopped';
  /** Joiners of the forming generation, in join order. */
  readonly joiners: readonly Joiner[];
  /** Rendezvous deadline, set by the first joiner of a forming generation. */
  readonly deadline: number | null;
  /** Members of the last formed generation, indexed by rank. */
  readonly members: readonly Member[];
  /** Model signature and config digest every rank must send (fixed by the first joiner of the run). */
  readonly reference: {
    readonly modelSignature: string;
    readonly configDigest: string;
    readonly by: string;
  } | null;
  /** Every failure of the run, oldest first. */
  readonly failures: readonly Failure[];
}

/** Inputs of `decide`. */
export type MembershipEvent =
  | { readonly kind: 'join'; readonly join: JoinInput }
  /** The Join call of `workerId` was cancelled by its client before the rendezvous completed. */
  | { readonly kind: 'joinCancelled'; readonly workerId: string }
  | {
      readonly kind: 'heartbeat';
      readonly generation: number;
      readonly rank: number;
      readonly workerId: string;
      readonly state: number;
      readonly epoch: number;
      readonly step: number;
      /** True when the worker reports WORKER_STATE_FAILED; `message` says why. */
      readonly failed: boolean;
      readonly message: string;
    }
  | {
      readonly kind: 'leave';
      readonly generation: number;
      readonly rank: number;
      readonly workerId: string;
      readonly reason: string;
      readonly exitCode: number;
    }
  | { readonly kind: 'tick' }
  | { readonly kind: 'stop'; readonly reason: string };

/** What the executor tells a rank after a heartbeat. */
export type HeartbeatVerdict = 'continue' | 'abort_step' | 'rejoin' | 'stop';

/** Outputs of `decide`, applied by the executor in order. */
export type MembershipAction =
  /** Refuse the request that caused this decision. */
  | { readonly kind: 'reject'; readonly error: CoordinatorError }
  /** Hold the Join call open until `formed` or `rendezvousFailed`. */
  | { readonly kind: 'wait'; readonly workerId: string }
  /** A generation formed: answer every held Join (and an idempotent re-Join) with its member. */
  | { readonly kind: 'formed'; readonly generation: number; readonly members: readonly Member[] }
  /** The rendezvous failed: fail every held Join of these workers with `error`. */
  | {
      readonly kind: 'rendezvousFailed';
      readonly workerIds: readonly string[];
      readonly error: CoordinatorError;
    }
  /** Answer the heartbeat. */
  | {
      readonly kind: 'heartbeatReply';
      readonly generation: number;
      readonly verdict: HeartbeatVerdict;
      readonly deadRanks: readonly number[];
      readonly message: string;
    }
  /** Acknowledge the Leave. */
  | { readonly kind: 'leaveAck' }
  /** A rank was declared dead (for logs and events). */
  | { readonly kind: 'declaredDead'; readonly failure: Failure };

/** Result of one decision. */
export interface Decision {
  readonly state: MembershipState;
  readonly actions: readonly MembershipAction[];
}
