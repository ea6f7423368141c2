/**
 * `coordinator`: membership (rendezvous, heartbeats, fencing by generation), epoch plans with
 * α/lr, per-rank shards and replica checksums for one training run, served over gRPC
 * (proto/bbn/v1/coordinator.proto).
 */
export {
  type Clock,
  CoordinatorError,
  type CoordinatorRun,
  CoordinatorUnavailableError,
  DEFAULT_TIMINGS,
  fromStatus,
  InvalidRequestError,
  type MembershipTimings,
  PreconditionError,
  RankTakenError,
  RendezvousTimeoutError,
  type ResumePoint,
  RunStoppedError,
  toStatus,
  UnknownRunError,
} from './api.ts';
export { ChecksumBoard, type ChecksumResult, type ChecksumVerdict } from './checksums.ts';
export {
  decide,
  type Failure,
  initialMembership,
  type MembershipAction,
  type MembershipEvent,
  type MembershipState,
  type MembershipStatus,
  membershipStatus,
  tick,
} from './membership.ts';
export { type EpochSummary, PlanBook } from './plans.ts';
export { type BindAddress, CoordinatorServer, type CoordinatorServerOptions } from './server.ts';
