/**
 * Prometheus metrics of one training process: a registry of its own (never prom-client's global
 * default, so two trainers in one process or test never collide), the gauges and histograms a
 * dashboard needs, and a tiny `node:http` endpoint serving `/metrics`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge, Histogram, Registry } from 'prom-client';

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
  private readonly labels: Record<'run' | 'rank', string>;

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
    this.allreduceBytes = gauge('bbn_allreduce_bytes', 'Bytes of gradient reduced by the last allreduce');
    this.samplesPerSecond = gauge('bbn_samples_per_second', 'Training samples per second on this rank');
    this.heartbeatAgeSeconds = gauge(
      'bbn_heartbeat_age_seconds',
      'Seconds since this rank last heartbeat to the workflow',
    );
    this.epoch = gauge('bbn_epoch', 'Current epoch (1-based)');
    this.alpha = gauge(
      'bbn_alpha',
      'Cumulative-learning alpha of the current epoch (conventional-branch weight)',
    );
    this.lr = gauge('bbn_learning_rate', 'Learning rate of the current epoch');
  }

  /** Records one finished step. */
  observeStep(s: {
    stepSeconds: number;
    allreduceSeconds: number;
    allreduceBytes: number;
    samplesPerSecond: number;
  }): void {
    this.stepSeconds.observe(this.labels, s.stepSeconds);
    this.allreduceSeconds.observe(this.labels, s.allreduceSeconds);
    this.allreduceBytes.set(this.labels, s.allreduceBytes);
    this.samplesPerSecond.set(this.labels, s.samplesPerSecond);
  }

  /** Records the epoch's broadcast values. `alpha` null (single-branch methods) leaves it unset. */
  setEpoch(epoch: number, alpha: number | null, lr: number): void {
    this.epoch.set(this.labels, epoch);
    if (alpha !== null) this.alpha.set(this.labels, alpha);
    this.lr.set(this.labels, lr);
  }

  /** Records the heartbeat age (seconds). */
  setHeartbeatAge(seconds: number): void {
    this.heartbeatAgeSeconds.set(this.labels, seconds);
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
