/**
 * A rank's heartbeat loop: reports state and progress every interval and turns the coordinator's
 * answers into actions (ABORT_STEP: a peer is dead, abort the ring now; STOP/REJOIN: stop after
 * the step). A coordinator silent for longer than the heartbeat timeout is itself a failure, so
 * an orphaned worker (launcher gone) stops instead of training forever.
 */
import type { CoordinatorError } from '../../coordinator/api.ts';
import { type CoordinatorClient, HeartbeatAction, WorkerState } from './coordinator-client.ts';

/** What a heartbeat reports besides identity. */
export interface Progress {
  state: number;
  epoch: number;
  step: number;
  allreduceSequence: number;
  stepMs: number;
  computeMs: number;
  allreduceWaitMs: number;
}

/** Reactions to the coordinator's answers. */
export interface HeartbeatHandlers {
  /** A peer was declared dead (message names it). */
  onAbort(message: string): void;
  /** The run is stopping or re-forming: finish the step and exit in order. */
  onStop(message: string): void;
  /** No successful heartbeat for longer than the timeout. */
  onLost(err: Error): void;
}

/** Identity of the heartbeating rank. */
export interface HeartbeatIdentity {
  readonly runId: string;
  readonly generation: number;
  readonly rank: number;
  readonly workerId: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

/** The heartbeat timer of one rank; `stop()` clears it. */
export class Heartbeats {
  readonly progress: Progress = {
    state: WorkerState.idle,
    epoch: 0,
    step: 0,
    allreduceSequence: 0,
    stepMs: 0,
    computeMs: 0,
    allreduceWaitMs: 0,
  };
  private timer: NodeJS.Timeout | null = null;
  private inFlight = false;
  private lastOk = performance.now();
  private stopped = false;

  constructor(
    private readonly client: CoordinatorClient,
    private readonly id: HeartbeatIdentity,
    private readonly handlers: HeartbeatHandlers,
  ) {}

  /** Starts beating (first beat at once). */
  start(): void {
    this.lastOk = performance.now();
    this.timer = setInterval(() => this.beat(), this.id.intervalMs);
    this.beat();
  }

  /** Sends one heartbeat with a failure message (best effort, bounded). */
  async reportFailure(message: string): Promise<void> {
    await this.client
      .heartbeat(this.request({ ...this.progress, state: WorkerState.failed }, message), this.id.intervalMs)
      .catch(() => {});
  }

  private request(p: Progress, message = '') {
    return {
      runId: this.id.runId,
      generation: this.id.generation,
      rank: this.id.rank,
      workerId: this.id.workerId,
      ...p,
      message,
    };
  }

  private beat(): void {
    if (this.stopped || this.inFlight) return;
    if (performance.now() - this.lastOk > this.id.timeoutMs * 2) {
      this.stop();
      this.handlers.onLost(
        new Error(
          `rank ${this.id.rank}: no answer from the coordinator for ${Math.round(performance.now() - this.lastOk)} ms`,
        ),
      );
      return;
    }
    this.inFlight = true;
    this.client
      .heartbeat(this.request(this.progress), this.id.timeoutMs)
      .then((res) => {
        this.lastOk = performance.now();
        if (this.stopped) return;
        if (res.action === HeartbeatAction.abortStep) this.handlers.onAbort(res.message);
        else if (res.action === HeartbeatAction.stop || res.action === HeartbeatAction.rejoin)
          this.handlers.onStop(res.message || 'run stopping');
      })
      .catch((err: CoordinatorError) => {
        // A refusal (e.g. fenced generation) is final; transport failures are retried until the timeout.
        if (!this.stopped && err.name !== 'CoordinatorUnavailableError') {
          this.stop();
          this.handlers.onLost(err);
        }
      })
      .finally(() => {
        this.inFlight = false;
      });
  }

  /** Clears the timer; idempotent. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
