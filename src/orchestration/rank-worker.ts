/**
 * One rank of a durable run as a process: a Temporal worker polling `bbn-worker-<run>-<rank>`
 * with this process's training deps (its compute thread, its ring peer server), and its heartbeat
 * to the run's coordinator every second (where its ring listens, what it is doing). `bbn worker
 * --temporal` and the local supervisor of `bbn train` run it; a replaced process (crash, pod
 * restart) simply heartbeats and polls again and reloads from the checkpoint.
 */

import type { WorkflowBundleOption } from '@temporalio/worker';
import type { RunToken } from '../auth/run-token.ts';
import type { RankBeat } from '../coordinator/api.ts';
import { startHeartbeats } from '../coordinator/link.ts';
import type { EpochMetrics } from '../worker/run-dir.ts';
import type { StepReport } from '../worker/trainer.ts';
import { rankTaskQueue } from './api.ts';
import { connectTemporalWorker } from './connect.ts';
import { createLocalDeps, type LocalDepsOptions } from './local.ts';
import type { RankRingOptions } from './rank-ring.ts';
import { createTrainingWorker, installTemporalRuntime } from './worker.ts';

/** Options of {@link serveRank}. */
export interface ServeRankOptions {
  /** Temporal frontend, host:port. */
  readonly address: string;
  readonly namespace?: string;
  readonly runId: string;
  readonly rank: number;
  /** This node's backend choice over the run config's (`--backend`, `--threads`). */
  readonly compute?: LocalDepsOptions['compute'];
  readonly ring?: RankRingOptions;
  /** Also host the workflow (a prebuilt bundle, or `true` to build it here). */
  readonly workflows?: boolean | WorkflowBundleOption;
  /** Aborting it shuts the worker down (activities in flight are cancelled). */
  readonly signal?: AbortSignal;
  /** The run's coordinator and what to tell it (heartbeats every second from start to exit). */
  readonly coordinator?: {
    readonly address: string;
    readonly beat: () => Omit<RankBeat, 'rank' | 'host' | 'pid' | 'incarnation' | 'ringAddress'>;
    readonly say?: (line: string) => void;
    /** The run's token, sent with every heartbeat. */
    readonly token?: RunToken;
  };
  /** Called once the worker polls. */
  readonly onReady?: () => void;
  readonly onOpen?: LocalDepsOptions['onOpen'];
  /** Lines for people (which checkpoint the rank resumed from, which it skipped). */
  readonly log?: LocalDepsOptions['log'];
  readonly onStep?: (report: StepReport & { readonly allreduceBytes?: number }, epochs: number) => void;
  readonly onEpoch?: (row: EpochMetrics, epochs: number) => void | Promise<void>;
}

/** Serves rank `rank` of run `runId` until `signal` aborts; rejects when the worker fails. */
export async function serveRank(o: ServeRankOptions): Promise<void> {
  if (!Number.isInteger(o.rank) || o.rank < 0)
    throw new RangeError(`rank (${o.rank}) must be an integer >= 0`);
  installTemporalRuntime();
  const deps = createLocalDeps({
    compute: o.compute,
    ring: o.ring,
    log: o.log,
    onOpen: o.onOpen,
    onStep: o.onStep,
    onEpoch: o.onEpoch,
  });
  // The ring's address first: the coordinator's rendezvous takes it from the heartbeats.
  const ringAddress = await deps.ringAddress().catch(async (err: unknown) => {
    await deps.dispose();
    throw err;
  });
  const c = o.coordinator;
  const link = c
    ? startHeartbeats({
        address: c.address,
        runId: o.runId,
        rank: o.rank,
        beat: () => ({ ...c.beat(), ringAddress }),
        say: c.say,
        token: c.token,
      })
    : undefined;
  const connection = await connectTemporalWorker(o.address).catch(async (err: unknown) => {
    link?.close();
    await deps.dispose();
    throw err;
  });
  const stop = () => worker?.shutdown();
  let worker: Awaited<ReturnType<typeof createTrainingWorker>> | undefined;
  try {
    worker = await createTrainingWorker({
      connection,
      namespace: o.namespace,
      taskQueue: rankTaskQueue(o.runId, o.rank),
      deps,
      workflows: o.workflows,
    });
    if (o.signal?.aborted) return;
    o.signal?.addEventListener('abort', stop, { once: true });
    const running = worker.run();
    o.onReady?.();
    await running;
  } finally {
    o.signal?.removeEventListener('abort', stop);
    link?.close();
    await deps.dispose();
    await connection.close();
  }
}
