/**
 * Prometheus metrics of one training process: a registry of its own (never prom-client's global
 * default, so two trainers in one process or test never collide), the gauges and histograms a
 * dashboard needs (a worker's {@link TrainingMetrics}, the coordinator's {@link CoordinatorMetrics}),
 * and a tiny `node:http` endpoint serving `/metrics`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Labels every series carries. */
export interface TrainingMetricLabels {
  readonly run: string;
  readonly rank: string;
}

const LABELS = ['run', 'rank'] as const;

/** The training metrics of one process, on their own registry. */
export class TrainingMetrics {
  /** This process's registry; serve it with {@link serveMetrics}. */
  readonly registry = new Registry();
  readonly stepSeconds: Histogram<'run' | 'rank'>;
  readonly allreduceSeconds: Histogram<'run' | 'rank'>;
  readonly allreduceBytes: Gauge<'run' | 'rank'>;
  readonly samplesPerSecond: Gauge<'run' | 'rank'>;
  readonly heartbeatAgeSeconds: Gauge<'run' | 'rank'>;
  readonly epoch: Gauge<'run' | 'rank'>;
  readonly alpha: Gauge<'run' | 'rank'>;
  readonly lr: Gauge<'run' | 'rank'>;
  readonly loss: Gauge<'run' | 'rank'>;
  readonly top1: Gauge<'run' | 'rank'>;
  private readonly labels: Record<'run' | 'rank', string>;
  /** Set by {@link TrainingMetrics.trackHeartbeatAge}: the age in seconds at scrape time, or null. */
  private heartbeatAge?: () => number | null;

  constructor(labels: TrainingMetricLabels) {
    this.labels = { run: labels.run, rank: labels.rank };
    const registers = [this.registry];
    // Steps take milliseconds on MNIST to seconds on ResNet-50: buckets span 1 ms .. ~16 s.
    const timeBuckets = [
      0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1, 2, 4, 8, 16,
    ];
    this.stepSeconds = new Histogram({
      name: 'bbn_step_seconds',
      help: 'Wall time of one training step (forward, backward, allreduce, update), seconds',
      labelNames: LABELS,
      buckets: timeBuckets,
      registers,
    });
    this.allreduceSeconds = new Histogram({
      name: 'bbn_allreduce_seconds',
      help: 'Wall time of one gradient allreduce, seconds',
      labelNames: LABELS,
      buckets: timeBuckets,
      registers,
    });
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames: LABELS, registers });
    this.allreduceBytes = gauge(
      'bbn_allreduce_bytes',
      "Bytes this rank sent in the last step's allreduce (all its pieces, with overlap)",
    );
    this.samplesPerSecond = gauge('bbn_samples_per_second', 'Training samples per second on this rank');
    const ageOf = () => this.heartbeatAge?.();
    const labelsOf = () => this.labels;
    this.heartbeatAgeSeconds = new Gauge({
      name: 'bbn_heartbeat_age_seconds',
      help: 'Seconds since this rank last heartbeat (to the coordinator or the workflow)',
      labelNames: LABELS,
      registers,
      // Read at scrape time, so the age keeps growing while heartbeats stall.
      collect() {
        const age = ageOf();
        if (age !== undefined && age !== null) this.set(labelsOf(), age);
      },
    });
    this.epoch = gauge('bbn_epoch', 'Current epoch (1-based)');
    this.alpha = gauge(
      'bbn_alpha',
      'Cumulative-learning alpha of the current epoch (conventional-branch weight)',
    );
    this.lr = gauge('bbn_learning_rate', 'Learning rate of the current epoch');
    this.loss = gauge('bbn_train_loss', "Training loss of this rank's last step (its shard of the batch)");
    this.top1 = gauge(
      'bbn_test_top1',
      'Top-1 test accuracy of the last evaluated epoch, a fraction in [0, 1]',
    );
  }

  /** Records one finished step; `allreduceBytes` absent (not known to the caller) leaves that gauge as it was. */
  observeStep(s: {
    stepSeconds: number;
    allreduceSeconds: number;
    allreduceBytes?: number;
    samplesPerSecond: number;
    loss?: number;
  }): void {
    this.stepSeconds.observe(this.labels, s.stepSeconds);
    if (s.loss !== undefined && Number.isFinite(s.loss)) this.loss.set(this.labels, s.loss);
    this.allreduceSeconds.observe(this.labels, s.allreduceSeconds);
    if (s.allreduceBytes !== undefined) this.allreduceBytes.set(this.labels, s.allreduceBytes);
    this.samplesPerSecond.set(this.labels, s.samplesPerSecond);
  }

  /** Records the epoch's broadcast values. `alpha` null (single-branch methods) leaves it unset. */
  setEpoch(epoch: number, alpha: number | null, lr: number): void {
    this.epoch.set(this.labels, epoch);
    if (alpha !== null) this.alpha.set(this.labels, alpha);
    this.lr.set(this.labels, lr);
  }

  /** Records the top-1 test accuracy of an evaluated epoch (a fraction). */
  setTop1(top1: number): void {
    if (Number.isFinite(top1)) this.top1.set(this.labels, top1);
  }

  /** Records the heartbeat age (seconds). */
  setHeartbeatAge(seconds: number): void {
    this.heartbeatAgeSeconds.set(this.labels, seconds);
  }

  /** Computes the heartbeat age at every scrape from `ageSeconds` (null: no heartbeat yet, gauge untouched). */
  trackHeartbeatAge(ageSeconds: () => number | null): void {
    this.heartbeatAge = ageSeconds;
  }
}

const RUN = ['run'] as const;

/**
 * The coordinator's metrics, on their own registry: membership (generation, world size, ranks by
 * status, failures, each rank's heartbeat age and reported step) and the epoch it last broadcast
 * with its α and lr.
 */
export class CoordinatorMetrics {
  /** This process's registry; serve it with {@link serveMetrics}. */
  readonly registry = new Registry();
  readonly heartbeatAgeSeconds: Gauge<'run' | 'rank'>;
  readonly rankEpoch: Gauge<'run' | 'rank'>;
  readonly rankStep: Gauge<'run' | 'rank'>;
  readonly ranks: Gauge<'run' | 'status'>;
  readonly generation: Gauge<'run'>;
  readonly worldSize: Gauge<'run'>;
  readonly failures: Counter<'run'>;
  readonly epoch: Gauge<'run'>;
  readonly alpha: Gauge<'run'>;
  readonly lr: Gauge<'run'>;
  private readonly run: string;
  /** Ranks that have per-rank series now, so ranks of an older generation are removed. */
  private shown = new Set<number>();

  constructor(run: string) {
    this.run = run;
    const registers = [this.registry];
    const perRank = (name: string, help: string) => new Gauge({ name, help, labelNames: LABELS, registers });
    this.heartbeatAgeSeconds = perRank(
      'bbn_heartbeat_age_seconds',
      'Seconds since the rank last heartbeat to the coordinator (live ranks of the current generation)',
    );
    this.rankEpoch = perRank('bbn_rank_epoch', 'Epoch the rank reported in its last heartbeat');
    this.rankStep = perRank('bbn_rank_step', 'Step the rank reported in its last heartbeat');
    this.ranks = new Gauge({
      name: 'bbn_ranks',
      help: 'Ranks of the current generation by status (alive, dead, left)',
      labelNames: ['run', 'status'] as const,
      registers,
    });
    const runGauge = (name: string, help: string) => new Gauge({ name, help, labelNames: RUN, registers });
    this.generation = runGauge(
      'bbn_generation',
      'Current membership generation (0 before the first rendezvous)',
    );
    this.worldSize = runGauge('bbn_world_size', 'Ranks in the current generation');
    this.failures = new Counter({
      name: 'bbn_rank_failures_total',
      help: 'Ranks declared dead since the coordinator started',
      labelNames: RUN,
      registers,
    });
    this.epoch = runGauge('bbn_epoch', 'Latest epoch whose plan the coordinator broadcast (1-based)');
    this.alpha = runGauge('bbn_alpha', 'Cumulative-learning alpha the coordinator broadcast for that epoch');
    this.lr = runGauge('bbn_learning_rate', 'Learning rate the coordinator broadcast for that epoch');
  }

  /** Records a membership snapshot (the coordinator's `MembershipStatus` fits). */
  setMembership(s: {
    generation: number;
    ranks: readonly { rank: number; status: string; heartbeatAgeMs: number; epoch: number; step: number }[];
  }): void {
    const run = this.run;
    this.generation.set({ run }, s.generation);
    this.worldSize.set({ run }, s.ranks.length);
    for (const status of ['alive', 'dead', 'left']) {
      this.ranks.set({ run, status }, s.ranks.filter((r) => r.status === status).length);
    }
    const now = new Set<number>();
    for (const r of s.ranks) {
      const labels = { run, rank: String(r.rank) };
      now.add(r.rank);
      if (r.status === 'alive') this.heartbeatAgeSeconds.set(labels, Math.max(0, r.heartbeatAgeMs) / 1000);
      else this.heartbeatAgeSeconds.remove(labels);
      this.rankEpoch.set(labels, r.epoch);
      this.rankStep.set(labels, r.step);
    }
    for (const rank of this.shown) {
      if (now.has(rank)) continue;
      const labels = { run, rank: String(rank) };
      this.heartbeatAgeSeconds.remove(labels);
      this.rankEpoch.remove(labels);
      this.rankStep.remove(labels);
    }
    this.shown = now;
  }

  /** Records the epoch's broadcast values. `alpha` null (single-branch methods) leaves it unset. */
  setEpoch(epoch: number, alpha: number | null, lr: number): void {
    this.epoch.set({ run: this.run }, epoch);
    if (alpha !== null) this.alpha.set({ run: this.run }, alpha);
    this.lr.set({ run: this.run }, lr);
  }

  /** Counts one rank declared dead. */
  countFailure(): void {
    this.failures.inc({ run: this.run });
  }
}

/** A running `/metrics` endpoint. */
export interface MetricsServer {
  /** `http://host:port/metrics`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `registry` at `/metrics` on `host:port` (port 0: a free one; loopback by default). */
export async function serveMetrics(
  registry: Registry,
  opts: { port?: number; host?: string } = {},
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) =>
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`),
    );
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}/metrics`,
    port,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}
