/**
 * Contracts of the coordinator layer: the injected clock, the timings of liveness, what a rank
 * reports in its heartbeats and the coordinator's verdict on a rank that went silent.
 */

/** Milliseconds on a monotonic scale; injected so decisions are testable. */
export interface Clock {
  /** Current time in milliseconds. */
  now(): number;
}

/** Timing of liveness. */
export interface CoordinatorTimings {
  /** How often ranks heartbeat. */
  readonly heartbeatIntervalMs: number;
  /** Silence after which a rank of the running generation is reported lost. */
  readonly heartbeatTimeoutMs: number;
}

/**
 * Defaults: a heartbeat every second, lost after 4 s of silence (four missed beats: the main
 * thread never computes, so only a frozen, dead or cut-off process misses them). Judged every
 * half second, a rank is reported at most 4.5 s after it stopped.
 */
export const DEFAULT_TIMINGS: CoordinatorTimings = {
  heartbeatIntervalMs: 1_000,
  heartbeatTimeoutMs: 4_000,
};

/** What a rank is doing. */
export type RankPhase = 'starting' | 'idle' | 'training' | 'evaluating' | 'stopping';

/** One heartbeat of one rank. */
export interface RankBeat {
  readonly rank: number;
  readonly phase: RankPhase;
  /** Current epoch (0 before the first). */
  readonly epoch: number;
  /** Current step within the epoch. */
  readonly step: number;
  /** The rank's ring peer address, as its peers dial it. */
  readonly ringAddress: string;
  /** Host or pod name. */
  readonly host: string;
  readonly pid: number;
  /** Random id of the process's heartbeat link: another one means another process, whatever its pid and host. */
  readonly incarnation: string;
  /** Milliseconds since the rank's compute thread last made progress. */
  readonly progressAgeMs: number;
}

/** A rank of the running generation that stopped heartbeating, or whose process was replaced. */
export interface RankVerdict {
  readonly rank: number;
  /**
   * `silent`: no heartbeat for the timeout (from the coordinator's seat a frozen, dead or
   * unreachable rank look alike). `exited`: another process (another incarnation) heartbeats as
   * the rank, so the generation's process is gone: its replacement, restarted at once by a
   * kubelet, would otherwise keep the rank from ever looking silent.
   */
  readonly cause: 'silent' | 'exited';
  /** The generation the rank was lost from (the watched one). */
  readonly generation: number;
  /** For people: how long, and what the rank last said. */
  readonly detail: string;
  /** Milliseconds since its last heartbeat (or since the generation formed, if never heard). */
  readonly silentForMs: number;
}

/** The rendezvous of a generation did not complete in time; names the ranks that never reported. */
export class RendezvousTimeoutError extends Error {
  override name = 'RendezvousTimeoutError';
  constructor(
    readonly missing: readonly number[],
    timeoutMs: number,
  ) {
    super(
      `rendezvous: rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} sent no heartbeat within ${Math.round(timeoutMs / 1000)} s`,
    );
  }
}
