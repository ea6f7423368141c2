/**
 * `bbn worker --temporal HOST:PORT --run-id RUN --rank R`: one rank of a durable run, serving its
 * Temporal task queue until SIGTERM / Ctrl-C (the pod's or the local supervisor's stop). A rank
 * that crashed and came back just polls again: the workflow restarts the epoch from the last
 * checkpoint on it. Prints `rank R: ready` once polling.
 */
import { runTokenFromEnv } from '../auth/run-token.ts';
import { ConfigError } from '../core/config.ts';
import type { Telemetry } from '../metrics/telemetry.ts';
import type { BackendPreference } from '../model/backend.ts';
import { serveRank } from '../orchestration/rank-worker.ts';
import { RankHealth, serveHealth } from '../worker/health.ts';
import { formatEpochLine } from './progress.ts';
import { checkpointUri, startCliTelemetry, type TelemetryFlags } from './telemetry-options.ts';

/** Options of a Temporal rank. */
export interface TemporalRankOptions {
  readonly temporal: string;
  readonly temporalNamespace?: string;
  /** The run's coordinator (host:port), heartbeated every second; needed when the run has W > 1. */
  readonly coordinator?: string;
  readonly runId: string;
  readonly rank: number;
  readonly backend?: BackendPreference;
  readonly threads?: number;
  /** Interface of the ring peer server; default 127.0.0.1. */
  readonly host?: string;
  /** Host the other ranks dial; default `host`. */
  readonly advertise?: string;
  /** Port of the ring peer server; default any free one. */
  readonly peerPort?: number;
  /** Port of the health endpoint (`GET /healthz` on `host`); default any free one. */
  readonly healthPort?: number;
  /** Also host the workflow (a bundle file written by `writeWorkflowBundle`, or true to build it). */
  readonly workflows?: string | boolean;
  /** `--nats`, `--metrics-port`, `--metrics-host` (telemetry starts when the first run opens). */
  readonly telemetry?: TelemetryFlags;
}

/** Serves the rank until SIGINT/SIGTERM; resolves with the exit code (0 stopped in order, 1 failed). */
export async function runTemporalRank(o: TemporalRankOptions): Promise<number> {
  if (!o.runId) throw new ConfigError('bbn worker --temporal needs --run-id RUN');
  if (!Number.isInteger(o.rank) || o.rank < 0) {
    throw new ConfigError(`bbn worker --temporal needs --rank R (an integer >= 0), got ${o.rank}`);
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  // Served by this (main) thread, which never computes: it answers unless the process is frozen.
  const health = new RankHealth(o.rank);
  const healthServer = await serveHealth(health, o.healthPort ?? 0, o.host ?? '127.0.0.1');
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const say = (line: string) => process.stdout.write(`${line}\n`);
  // The run's config arrives with the first activity: telemetry starts then.
  let telemetry: Promise<Telemetry | undefined> | undefined;
  const withTelemetry = (use: (t: Telemetry) => void) => telemetry?.then((t) => t && use(t));
  const token = runTokenFromEnv();
  try {
    await serveRank({
      address: o.temporal,
      namespace: o.temporalNamespace,
      runId: o.runId,
      rank: o.rank,
      compute: { backend: o.backend, threads: o.threads },
      ring: { host: o.host, advertiseHost: o.advertise, port: o.peerPort, token },
      workflows: typeof o.workflows === 'string' ? { codePath: o.workflows } : o.workflows,
      signal: stop.signal,
      log: say,
      coordinator: o.coordinator
        ? {
            address: o.coordinator,
            beat: () => {
              const h = health.report();
              return {
                phase: h.phase === 'training' ? 'training' : 'idle',
                epoch: h.epoch,
                step: h.step,
                progressAgeMs: h.progressAgeMs,
              };
            },
            say,
            token,
          }
        : undefined,
      onOpen: (cfg, layout, backend, outDir) => {
        say(`rank ${o.rank}: run ${o.runId} opened on its compute thread, backend ${backend}`);
        telemetry ??= startCliTelemetry(o.telemetry ?? {}, {
          runId: o.runId,
          cfg,
          role: 'worker',
          rank: layout.rank,
          // Rank 0 writes the checkpoints: its telemetry announces them.
          checkpointUri: (epoch, step) => checkpointUri(outDir, epoch, step),
        }).then(
          (t) => {
            if (t.metricsUrl) say(`rank ${o.rank}: metrics at ${t.metricsUrl}`);
            return t;
          },
          (err: Error) => {
            say(`rank ${o.rank}: telemetry off: ${err.message}`);
            return undefined;
          },
        );
      },
      onStep: (r) => {
        health.progress('training', r.epoch, r.step);
        withTelemetry((t) => t.onStep(r));
      },
      // Announced once polling: a supervisor probes it from then on (start-up is not judged).
      onReady: () =>
        say(
          `rank ${o.rank}: ready (run ${o.runId}, ${o.temporal}${o.coordinator ? `, coordinator ${o.coordinator}` : ''}); health ${healthServer.url}`,
        ),
      onEpoch: (m, epochs) => {
        health.progress('evaluated', m.epoch, 0);
        withTelemetry((t) => t.onEpoch(m));
        say(formatEpochLine(m, epochs));
      },
    });
    return 0;
  } catch (err) {
    const e = err as Error;
    process.stderr.write(`bbn worker: rank ${o.rank}: ${e.name}: ${e.message}\n`);
    return 1;
  } finally {
    await (await telemetry)?.close();
    await healthServer.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
