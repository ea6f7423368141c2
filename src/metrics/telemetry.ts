/**
 * Telemetry of one process of a run (a worker rank, the single-process trainer or the
 * coordinator): one object whose hooks feed both outputs people watch,
 *
 *   - NATS (src/events): throttled `step` events, the epoch's α/lr mirror and `epoch-start`,
 *     `epoch-end`, `checkpoint`, membership events and `run-end`, and the run's status in the
 *     `bbn-runs` key-value bucket, all through the best-effort {@link EventPublisher} (O(1), never
 *     blocks, never throws; losing NATS drops events, never slows a step);
 *   - Prometheus: the process's gauges and histograms on an optional `/metrics` endpoint.
 *
 * Placement: `metrics` sits beside `events`, below `worker`, `coordinator` and `cli`; it imports
 * `events` and `core` only. The hook inputs are structural ({@link StepSample}, {@link EpochSample}),
 * so the worker's `StepReport` and `EpochMetrics` fit without an upward import.
 *
 * Who publishes what: every process its own `step` events; the run's owner (rank 0, the
 * single-process trainer; any telemetry whose `onEpoch` is called becomes one, since only the rank
 * that owns the run directory records epochs) the epoch events, the KV status and `run-end`; the
 * coordinator the α/lr broadcast, membership and heartbeats.
 */
import type { RunConfig } from '../core/config.ts';
import { epochSchedule } from '../core/epoch-schedule.ts';
import { totalEpochs } from '../core/methods.ts';
import { checkRunId, type EventSource, type RunStatus, type TrainingEvent } from '../events/api.ts';
import { type MembershipMemory, type MembershipSnapshot, membershipEvents } from '../events/membership.ts';
import { EventPublisher, type EventSink, NullEventSink, type PublisherStats } from '../events/publisher.ts';
import { CoordinatorMetrics, type MetricsServer, serveMetrics, TrainingMetrics } from './prometheus.ts';

/** One finished step, as the trainer reports it (`StepReport` fits); `allreduceBytes` when known. */
export interface StepSample {
  readonly epoch: number;
  readonly step: number;
  readonly steps: number;
  readonly loss: number;
  readonly alpha: number | null;
  readonly lr: number;
  readonly computeSeconds: number;
  readonly reduceSeconds: number;
  readonly allreduceBytes?: number;
}

/** One evaluated epoch (`EpochMetrics` of metrics.jsonl fits). */
export interface EpochSample {
  readonly epoch: number;
  readonly trainLoss: number;
  readonly testTop1: number;
  readonly many: number | null;
  readonly medium: number | null;
  readonly few: number | null;
  readonly seconds: number;
}

/** One epoch's broadcast plan (the coordinator's `EpochSummary` fits; NaN α means none). */
export interface PlanSample {
  readonly epoch: number;
  readonly alpha: number | null;
  readonly lr: number;
  readonly steps: number;
}

/** How this process's part of the run ended. `paused`: stopped with a checkpoint, resumable (no `run-end`). */
export interface RunEnd {
  readonly state: 'completed' | 'failed' | 'cancelled' | 'paused';
  readonly reason?: string | null;
}

/** Options of {@link startTelemetry}. */
export interface TelemetryOptions {
  /** Run id (a NATS subject token: `[A-Za-z0-9_-]{1,128}`). */
  readonly runId: string;
  /** The resolved run config: total epochs, batch size, world size, checkpoint cadence, α schedule. */
  readonly cfg: RunConfig;
  readonly role: 'worker' | 'trainer' | 'coordinator';
  /** Rank of a worker (null or absent: not known up front); the trainer is rank 0. */
  readonly rank?: number | null;
  /** NATS URL; absent or empty: no events (Prometheus still works). */
  readonly natsUrl?: string;
  /** Serve `/metrics` on this port (0: a free one); absent: no endpoint. */
  readonly metricsPort?: number;
  /** Interface of the endpoint; default 127.0.0.1 (use 0.0.0.0 in a pod). */
  readonly metricsHost?: string;
  /** Publishes epoch events, the KV status and `run-end`; default: rank 0 and the trainer. */
  readonly ownsRun?: boolean;
  /** Where a due epoch checkpoint lives (absent: no `checkpoint` events from `onEpoch`). */
  readonly checkpointUri?: (epoch: number, step: number) => string;
  /** Event sink instead of a NATS publisher (tests, or one publisher shared by several objects); the caller closes it. */
  readonly sink?: EventSink;
  /** Minimum gap between two step-driven KV status writes (ms, default 1000). */
  readonly statusIntervalMs?: number;
  /** Bound on flushing at close (ms, default 1500). */
  readonly closeTimeoutMs?: number;
  /** Wall clock (ms since the Unix epoch); default Date.now. */
  readonly now?: () => number;
}

/** A started telemetry object; every hook is a bound function that never throws. */
export interface Telemetry {
  /** `http://host:port/metrics`, or null without an endpoint. */
  readonly metricsUrl: string | null;
  /** The worker's or trainer's Prometheus metrics (null for the coordinator). */
  readonly training: TrainingMetrics | null;
  /** The coordinator's Prometheus metrics (null for others). */
  readonly coordinator: CoordinatorMetrics | null;
  /** After every step (runWorker's and runTraining's `onStep`). */
  readonly onStep: (report: StepSample) => void;
  /** After each evaluated epoch (rank 0 / the trainer). */
  readonly onEpoch: (metrics: EpochSample) => void;
  /** The coordinator served epoch `plan` for the first time: the α/lr broadcast. */
  readonly epochPlan: (plan: PlanSample) => void;
  /** A checkpoint was written. */
  readonly checkpoint: (epoch: number, uri: string) => void;
  /** The coordinator's membership snapshot (call on every change and about once a second). */
  readonly observeMembership: (snapshot: MembershipSnapshot) => void;
  /** This process (or, for the coordinator, `rank`) failed. */
  readonly failed: (reason: string, rank?: number) => void;
  /** A heartbeat was sent now; the heartbeat-age gauge grows from here at scrape time. */
  readonly heartbeat: () => void;
  /** Writes the run's status now (e.g. the coordinator's `starting`). */
  readonly runStatus: (state: RunStatus['state']) => void;
  /** Publisher counters (all zero without NATS). */
  stats(): PublisherStats;
  /** Publishes the end (owner: status and `run-end`), flushes within the bound, closes the endpoint. */
  close(end?: RunEnd): Promise<void>;
}

const guard =
  <A extends unknown[]>(f: (...args: A) => void) =>
  (...args: A): void => {
    try {
      f(...args);
    } catch {
      // Telemetry never fails training: a bad number or a closed sink only loses one event.
    }
  };

/** Starts telemetry: connects to NATS in the background (never waits for it) and binds the endpoint. */
export async function startTelemetry(opts: TelemetryOptions): Promise<Telemetry> {
  const { cfg, role } = opts;
  // A run id must be a subject token only where events go out; Prometheus labels take any string.
  const runId = opts.sink || opts.natsUrl ? checkRunId(opts.runId) : opts.runId;
  const now = opts.now ?? Date.now;
  const rank = role === 'trainer' ? (opts.rank ?? 0) : (opts.rank ?? null);
  const source: EventSource = { role, rank: role === 'coordinator' ? null : rank };
  let owner = opts.ownsRun ?? (role === 'trainer' || (role === 'worker' && rank === 0));
  const epochs = totalEpochs(cfg);
  const W = Math.max(1, cfg.distributed.workers);
  const rowsPerRank = role === 'trainer' ? cfg.train.batchSize : cfg.train.batchSize / W;
  const statusIntervalMs = opts.statusIntervalMs ?? 1000;
  /** The publisher this object started and so closes; a given `sink` stays open. */
  const own: EventPublisher | undefined =
    opts.sink || !opts.natsUrl
      ? undefined
      : EventPublisher.start({
          servers: opts.natsUrl,
          name: `bbn-${role}${rank === null ? '' : `-${rank}`}`,
        });
  const sink: EventSink = opts.sink ?? own ?? new NullEventSink();
  const training =
    role === 'coordinator' ? null : new TrainingMetrics({ run: runId, rank: String(rank ?? 'none') });
  const coordinator = role === 'coordinator' ? new CoordinatorMetrics(runId) : null;
  let server: MetricsServer | undefined;
  if (opts.metricsPort !== undefined) {
    const registry = (training ?? coordinator)!.registry;
    server = await serveMetrics(registry, { port: opts.metricsPort, host: opts.metricsHost });
  }

  /** Where the run is, for the KV status. */
  const pos = { epoch: 0, step: 0, bestTop1: null as number | null };
  let lastStatusAt = Number.NEGATIVE_INFINITY;
  let announcedEpoch = 0;
  let lastHeartbeat: number | null = null;
  let membership: MembershipMemory = new Map();
  let failureReported = false;
  let closed = false;
  training?.trackHeartbeatAge(() => (lastHeartbeat === null ? null : (now() - lastHeartbeat) / 1000));

  const emit = (e: Omit<TrainingEvent, 'runId' | 'source' | 'timestamp'>, from: EventSource = source) => {
    if (!closed) sink.publish({ ...e, runId, source: from, timestamp: now() } as TrainingEvent);
  };
  const writeStatus = (state: RunStatus['state']) => {
    lastStatusAt = now();
    sink.setStatus({
      runId,
      state,
      epoch: pos.epoch,
      epochs,
      step: pos.step,
      bestTop1: pos.bestTop1,
      updatedAt: lastStatusAt,
    });
  };
  const announceEpoch = (epoch: number, steps: number) => {
    // The α/lr broadcast is the coordinator's (a rank process only trains with it); in one
    // process (`trainer`) the trainer is its own coordinator.
    if (role === 'trainer') {
      const { alpha, lr } = epochSchedule(cfg, epoch);
      emit({ kind: 'alpha', metadata: { epoch, alpha, lr } });
    }
    emit({ kind: 'epoch-start', metadata: { epoch, steps } });
  };

  const onStep = guard((r: StepSample) => {
    const stepSeconds = r.computeSeconds + r.reduceSeconds;
    const samplesPerSecond = stepSeconds > 0 ? rowsPerRank / stepSeconds : 0;
    if (training) {
      if (r.epoch !== pos.epoch) {
        const { alpha, lr } = epochSchedule(cfg, r.epoch);
        training.setEpoch(r.epoch, alpha, lr);
      }
      training.observeStep({
        stepSeconds,
        allreduceSeconds: r.reduceSeconds,
        allreduceBytes: r.allreduceBytes,
        samplesPerSecond,
        loss: r.loss,
      });
    }
    // A step's report follows the heartbeat that carried it (a durable rank heartbeats every step;
    // a coordinator's worker at least every interval): the age gauge starts from here in every mode.
    lastHeartbeat = now();
    pos.epoch = r.epoch;
    pos.step = r.step;
    if (owner && r.epoch > announcedEpoch) {
      announcedEpoch = r.epoch;
      announceEpoch(r.epoch, r.steps);
      writeStatus('running');
    } else if (owner && now() - lastStatusAt >= statusIntervalMs) {
      writeStatus('running');
    }
    // A diverged (NaN) loss cannot travel as JSON; Prometheus and metrics.jsonl still show the run.
    if (!Number.isFinite(r.loss)) return;
    emit({
      kind: 'step',
      metadata: {
        epoch: r.epoch,
        step: r.step,
        loss: r.loss,
        alpha: r.alpha,
        lr: r.lr,
        stepsPerSecond: stepSeconds > 0 ? 1 / stepSeconds : 0,
        samplesPerSecond,
        allreduceShare: stepSeconds > 0 ? Math.min(1, Math.max(0, r.reduceSeconds / stepSeconds)) : 0,
      },
    });
  });

  const checkpoint = guard((epoch: number, uri: string) => {
    emit({ kind: 'checkpoint', metadata: { epoch, uri } });
  });

  const onEpoch = guard((m: EpochSample) => {
    owner = true;
    pos.epoch = m.epoch;
    pos.step = 0;
    pos.bestTop1 = Math.max(pos.bestTop1 ?? Number.NEGATIVE_INFINITY, m.testTop1);
    training?.setTop1(m.testTop1);
    if (Number.isFinite(m.trainLoss)) {
      emit({
        kind: 'epoch-end',
        metadata: {
          epoch: m.epoch,
          trainLoss: m.trainLoss,
          top1: m.testTop1,
          many: m.many,
          medium: m.medium,
          few: m.few,
          seconds: m.seconds,
        },
      });
    }
    const due = m.epoch % cfg.checkpoint.everyEpochs === 0 || m.epoch === epochs;
    if (due && opts.checkpointUri) checkpoint(m.epoch, opts.checkpointUri(m.epoch, 0));
    writeStatus('running');
  });

  const epochPlan = guard((p: PlanSample) => {
    const alpha = p.alpha === null || Number.isNaN(p.alpha) ? null : p.alpha;
    coordinator?.setEpoch(p.epoch, alpha, p.lr);
    training?.setEpoch(p.epoch, alpha, p.lr);
    // The broadcast only: the epoch starts when the run's owner steps in it (a plan is made ahead).
    emit({ kind: 'alpha', metadata: { epoch: p.epoch, alpha, lr: p.lr } });
  });

  const observeMembership = guard((s: MembershipSnapshot) => {
    coordinator?.setMembership(s);
    const { events, memory } = membershipEvents(runId, membership, s, now());
    membership = memory;
    for (const e of events) {
      if (e.kind === 'worker-failed') coordinator?.countFailure();
      if (!closed) sink.publish(e);
    }
  });

  const failed = guard((reason: string, about?: number) => {
    const r = about ?? rank;
    if (about === undefined) failureReported = true;
    emit({ kind: 'worker-failed', metadata: { reason } }, { role: 'worker', rank: r });
  });

  let closing: Promise<void> | undefined;
  const close = (end?: RunEnd): Promise<void> => {
    closing ??= (async () => {
      try {
        if (end?.state === 'failed' && role !== 'coordinator' && !failureReported) {
          failed(end.reason ?? 'failed');
        }
        if (end && owner) {
          writeStatus(end.state);
          if (end.state !== 'paused') {
            emit({ kind: 'run-end', metadata: { state: end.state, reason: end.reason ?? null } });
          }
        }
      } catch {
        // best effort
      }
      closed = true;
      // Bounded: a dead NATS must not hold a finished process.
      await own?.close(opts.closeTimeoutMs ?? 1500).catch(() => undefined);
      await server?.close();
    })();
    return closing;
  };

  return {
    metricsUrl: server?.url ?? null,
    training,
    coordinator,
    onStep,
    onEpoch,
    epochPlan,
    checkpoint,
    observeMembership,
    failed,
    heartbeat: () => {
      lastHeartbeat = now();
    },
    runStatus: guard((state: RunStatus['state']) => writeStatus(state)),
    stats: () => sink.stats(),
    close,
  };
}
