/**
 * The coordinator's telemetry (`--nats`, `--metrics-port` of the process hosting a W > 1 run):
 * the α/lr broadcast as each epoch is planned, and once a second the ranks as their heartbeats
 * show them (alive, or dead after the heartbeat timeout, with heartbeat ages), which NATS carries
 * as membership events and Prometheus as `bbn_ranks` / `bbn_heartbeat_age_seconds`.
 */
import type { CoordinatorServer } from '../coordinator/server.ts';
import type { RunConfig } from '../core/config.ts';
import type { EpochPlanSummary } from '../orchestration/api.ts';
import { startCliTelemetry, type TelemetryFlags } from './telemetry-options.ts';

/** How often the ranks' snapshot goes out. */
const EVERY_MS = 1_000;

/** The glue: `plan` for each epoch plan, `attach` once the server exists, `close` at the end. */
export interface CoordinatorTelemetry {
  readonly metricsUrl: string | null;
  plan(p: EpochPlanSummary): void;
  /** Starts the once-a-second snapshot of `server`'s ranks; `run` gives the workflow's generation and world size. */
  attach(
    server: CoordinatorServer,
    run: () => { readonly generation: number; readonly workers: number },
  ): void;
  close(): Promise<void>;
}

/** Starts the coordinator's telemetry; without `--nats` or `--metrics-port` it does nothing. */
export async function startCoordinatorTelemetry(
  flags: TelemetryFlags,
  ctx: { readonly runId: string; readonly cfg: RunConfig },
): Promise<CoordinatorTelemetry> {
  const t = await startCliTelemetry(flags, { runId: ctx.runId, cfg: ctx.cfg, role: 'coordinator' });
  let timer: NodeJS.Timeout | undefined;
  /** Epochs already broadcast: a plan asked again (a restart, a prefetch) is published once. */
  const published = new Set<number>();
  return {
    metricsUrl: t.metricsUrl,
    plan: (p) => {
      if (published.has(p.epoch)) return;
      published.add(p.epoch);
      t.epochPlan({ epoch: p.epoch, alpha: p.alpha, lr: p.lr, steps: p.steps });
    },
    attach(server, run) {
      const timeout = server.board.timings.heartbeatTimeoutMs;
      timer = setInterval(() => {
        const { generation, workers } = run();
        t.observeMembership({
          generation,
          // A rank scaled away is no member (the host announces it as left): only the world's ranks.
          ranks: server.board
            .snapshot()
            .filter(({ beat }) => beat.rank < workers)
            .map(({ beat, ageMs }) => ({
              rank: beat.rank,
              status: ageMs <= timeout ? 'alive' : 'dead',
              heartbeatAgeMs: ageMs,
              epoch: beat.epoch,
              step: beat.step,
            })),
          firstFailure: null,
          consequences: [],
        });
      }, EVERY_MS);
      timer.unref();
    },
    async close() {
      clearInterval(timer);
      await t.close();
    },
  };
}
