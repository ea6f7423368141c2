/**
 * Telemetry of the process that hosts a durable run's workflow (`bbn train` with any number of
 * workers, and the cluster orchestrator): what only the workflow's host knows, published on the
 * run's NATS subjects and in the `bbn-runs` bucket.
 *
 *   - the run's end (`run-end` and the final KV status), whatever the world size: the ranks are
 *     other processes (or a compute thread) that never learn that the workflow completed, was
 *     stopped or failed;
 *   - `paused` while the workflow waits at an epoch boundary (no rank steps, so no rank says so);
 *   - `worker-leave` for a rank the run no longer has (scaled away, or stopped at the end), so a
 *     watcher stops showing it `ok`.
 *
 * The ranks keep publishing their steps and, rank 0, the `running` status with its position; this
 * object writes the status only while the run is paused (again on every poll, so a rank's late
 * `running` write cannot stick) and once at the end, after the caller has stopped the ranks (so
 * the end is the last write). Events go out as `{ role: 'workflow', rank: null }`, which gets no
 * row in `bbn watch`. Best effort like every publisher: NATS down loses events, never the run.
 */
import type { RunConfig } from '../core/config.ts';
import { totalEpochs } from '../core/methods.ts';
import { checkRunId, type EventSource, type RunStatus, type TrainingEvent } from '../events/api.ts';
import { EventPublisher, type EventSink } from '../events/publisher.ts';

/** Where the run stands, as the host reads it from the workflow and the run directory. */
export interface RunPosition {
  /** Completed epochs (the epoch in flight while training). */
  readonly epoch: number;
  /** Steps done in the epoch after `epoch` (a stop mid-epoch), else 0. */
  readonly step: number;
  readonly bestTop1: number | null;
}

/** How the run ended, as the workflow's result says. */
export interface HostRunEnd {
  readonly state: 'completed' | 'failed' | 'cancelled';
  readonly reason?: string | null;
}

/** Options of {@link startRunHost}. */
export interface RunHostOptions {
  readonly runId: string;
  readonly cfg: RunConfig;
  /** NATS URL; absent or empty (and no `sink`): every call is a no-op. */
  readonly natsUrl?: string;
  /** Event sink instead of a NATS publisher (tests); the caller closes it. */
  readonly sink?: EventSink;
  /** Bound on flushing at the end (ms, default 1500). */
  readonly closeTimeoutMs?: number;
  /** Wall clock (ms since the Unix epoch); default Date.now. */
  readonly now?: () => number;
}

/** The host's telemetry; every method never throws. */
export interface RunHost {
  /** The workflow's state, about once a second: while `paused`, the KV status says so at `position`. */
  progress(state: string, position: RunPosition): void;
  /** Rank `rank` left the run (scaled away, or stopped); `worldSize` is the run's size without it. */
  rankLeft(rank: number, worldSize: number): void;
  /** Publishes the end (final status and `run-end`) and closes, within the flush bound. */
  end(end: HostRunEnd, position: RunPosition): Promise<void>;
  /** Closes without publishing an end (the host leaves a run that goes on, e.g. a second Ctrl-C). */
  close(): Promise<void>;
}

const SOURCE: EventSource = { role: 'workflow', rank: null };

/** Starts the host's telemetry (connects in the background, never waits for NATS). */
export function startRunHost(opts: RunHostOptions): RunHost {
  if (!opts.sink && !opts.natsUrl) {
    return { progress() {}, rankLeft() {}, end: async () => {}, close: async () => {} };
  }
  const runId = checkRunId(opts.runId);
  const now = opts.now ?? Date.now;
  const epochs = totalEpochs(opts.cfg);
  const own = opts.sink ? undefined : EventPublisher.start({ servers: opts.natsUrl!, name: 'bbn-workflow' });
  const sink: EventSink = opts.sink ?? own!;
  let closed = false;
  const status = (state: RunStatus['state'], p: RunPosition) =>
    sink.setStatus({
      runId,
      state,
      epoch: p.epoch,
      epochs,
      step: p.step,
      bestTop1: p.bestTop1,
      updatedAt: now(),
    });
  const emit = (e: Omit<TrainingEvent, 'runId' | 'timestamp' | 'source'>, source = SOURCE) => {
    sink.publish({ ...e, runId, source, timestamp: now() } as TrainingEvent);
  };
  const close = async () => {
    if (closed) return;
    closed = true;
    await own?.close(opts.closeTimeoutMs ?? 1500).catch(() => undefined);
  };
  return {
    progress(state, position) {
      if (closed || state !== 'paused') return;
      try {
        status('paused', position);
      } catch {
        // best effort
      }
    },
    rankLeft(rank, worldSize) {
      if (closed) return;
      try {
        emit({ kind: 'worker-leave', metadata: { worldSize } }, { role: 'worker', rank });
      } catch {
        // best effort
      }
    },
    async end(end, position) {
      if (closed) return;
      try {
        status(end.state, position);
        emit({ kind: 'run-end', metadata: { state: end.state, reason: end.reason ?? null } });
      } catch {
        // best effort
      }
      await close();
    },
    close,
  };
}
