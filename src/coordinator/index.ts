/**
 * `coordinator`: the durable run's coordinator, hosted by the process that hosts the workflow:
 * every rank's 1 s heartbeats, the rendezvous of each generation's ring, and the liveness verdict
 * on a silent rank (proto/bbn/v1/coordinator.proto). Epoch plans are its Temporal activity
 * (src/orchestration/coordinator-activities.ts).
 */
export {
  type Clock,
  type CoordinatorTimings,
  DEFAULT_TIMINGS,
  type RankBeat,
  type RankPhase,
  type RankVerdict,
  RendezvousTimeoutError,
} from './api.ts';
export { RankBoard } from './board.ts';
export { type HeartbeatLinkOptions, startHeartbeats } from './link.ts';
export { type BindAddress, beatOf, CoordinatorServer, type CoordinatorServerOptions } from './server.ts';
