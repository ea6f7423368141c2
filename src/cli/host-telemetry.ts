/**
 * The glue between a durable run's hosting process (durable-train.ts) and its host telemetry
 * (src/metrics/run-host.ts): from the workflow's progress (which the host asks for once a second)
 * it announces a pause, a resume and a scale request in the training terminal and keeps `bbn runs`
 * saying `paused` while the run waits at a boundary; it reads the run's position from its
 * directory, and turns the workflow's result (or failure) into the run's published end. Kept out of
 * durable-train.ts so the hosting code only calls `start`, `observe`, `end` and `fail`.
 */
import { basename } from 'node:path';
import type { RunConfig } from '../core/config.ts';
import type { RunHost, RunPosition } from '../metrics/run-host.ts';
import type { RunProgress, TrainingResult } from '../orchestration/api.ts';
import { readMetrics } from '../worker/run-dir.ts';
import { resolveTelemetryFlags, type TelemetryFlags } from './telemetry-options.ts';

/** The run's position from its directory: completed epochs, the best top-1, and a stop's step. */
export function positionOf(outDir: string, checkpoint?: string | null): RunPosition {
  const rows = readMetrics(outDir);
  const epoch = rows.at(-1)?.epoch ?? 0;
  const bestTop1 = rows.length === 0 ? null : Math.max(...rows.map((r) => r.testTop1));
  // A stop mid-epoch leaves `ckpt-e<completed epochs>-s<steps>`: that is where the run stands.
  const m = checkpoint ? /^ckpt-e(\d+)-s(\d+)\./.exec(basename(checkpoint)) : null;
  if (m && Number(m[1]) === epoch && Number(m[2]) > 0) return { epoch, step: Number(m[2]), bestTop1 };
  return { epoch, step: 0, bestTop1 };
}

/** A started host telemetry (see the module doc). */
export interface HostTelemetry {
  /** Rank `rank` was stopped for good (scaled away); `worldSize` ranks remain. */
  rankLeft(rank: number, worldSize: number): void;
  /** The workflow's progress, as the host just read it. */
  observe(p: RunProgress): void;
  /** The run ended with `result` (completed, or stopped with a checkpoint). */
  end(result: TrainingResult): Promise<void>;
  /** The run failed (the workflow's failure, or a rank that kept dying). */
  fail(err: unknown): Promise<void>;
}

/** Starts the host telemetry of run `runId` in `outDir`; `query` asks the workflow for its progress. */
export async function startHostTelemetry(o: {
  readonly runId: string;
  readonly cfg: RunConfig;
  readonly outDir: string;
  readonly flags: TelemetryFlags;
  /** Lines for people: pause, resume and scale announcements (and why the run's events are off). */
  readonly say?: (line: string) => void;
}): Promise<HostTelemetry> {
  const { natsUrl } = resolveTelemetryFlags(o.flags);
  let host: RunHost | undefined;
  if (natsUrl) {
    const { startRunHost } = await import('../metrics/run-host.ts'); // NATS loads only where it is used
    try {
      host = startRunHost({ runId: o.runId, cfg: o.cfg, natsUrl });
    } catch (err) {
      // A run id that is no NATS subject token: the run trains, its end is not published.
      o.say?.(`run ${o.runId}: run events off: ${(err as Error).message}`);
    }
  }
  let last: RunProgress | undefined;
  const announce = (p: RunProgress) => {
    if (p.state === 'paused' && last?.state !== 'paused') {
      o.say?.(
        `run ${o.runId}: paused after epoch ${p.epoch - 1}/${p.totalEpochs}; continue it with bbn resume ${o.runId}`,
      );
    } else if (last?.state === 'paused' && p.state !== 'paused') {
      o.say?.(`run ${o.runId}: resumed`);
    }
    if (p.pendingWorkers !== null && p.pendingWorkers !== last?.pendingWorkers) {
      o.say?.(`run ${o.runId}: workers ${p.workers} -> ${p.pendingWorkers} at the next epoch boundary`);
    }
    last = p;
  };
  return {
    rankLeft: (rank, worldSize) => host?.rankLeft(rank, worldSize),
    observe(p) {
      announce(p);
      if (p.state === 'paused') host?.progress(p.state, positionOf(o.outDir));
    },
    async end(result) {
      await host?.end(
        result.state === 'completed'
          ? { state: 'completed' }
          : {
              state: 'cancelled',
              reason: `stopped with a checkpoint; continue with bbn train --resume ${o.outDir}`,
            },
        positionOf(o.outDir, result.checkpoint),
      );
    },
    async fail(err) {
      const message = (err as Error)?.message ?? String(err);
      await host?.end({ state: 'failed', reason: message.split('\n')[0] }, positionOf(o.outDir));
    },
  };
}
