/**
 * `bbn train`, the embedded local default: the run is a Temporal workflow even on one machine,
 * so a crash of any process loses nothing. It uses the Temporal server at `--temporal` (or
 * BBN_TEMPORAL_ADDRESS), else starts a dev server whose SQLite state lives in the run directory
 * (`<out>/.temporal/`), on port 7233 when free so that `bbn status | pause | scale | cancel RUN`
 * find it without flags while the run trains.
 *
 * This process hosts the run's coordinator: the workflow and the coordinator's activities (plans,
 * rendezvous) on the coordinator's queue. W = 1 trains in this process too (the rank's model
 * computes on a worker thread so that Ctrl-C, status and telemetry answer during a step). W > 1
 * starts one `bbn worker --temporal` process per rank, kept alive by `RankProcesses` and following
 * `bbn scale`; each heartbeats to the coordinator's server here, which forms each generation's
 * ring and reports a rank silent for 4 s (with `--external-workers` the ranks are pods and this
 * verdict is the fast one; locally the supervisor's health probes usually see a loss first). Ctrl-C cancels the run cleanly (final checkpoint); a second Ctrl-C
 * leaves at once, and `bbn train --resume DIR` later re-attaches to the still-running workflow or
 * continues the stopped run from its last good checkpoint.
 */

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { runTokenFromEnv } from '../auth/run-token.ts';
import type { BindAddress } from '../coordinator/server.ts';
import type { RunConfig } from '../core/config.ts';
import { ConfigError } from '../core/config.ts';
import { bbnCacheDir } from '../devservers/index.ts';
import {
  type RankLost,
  type RestartPolicy,
  type RunProgress,
  type RunTimeouts,
  rankTaskQueue,
  type TrainingResult,
} from '../orchestration/api.ts';
import { runHandle } from '../orchestration/client.ts';
import { connectTemporal, connectTemporalWorker } from '../orchestration/connect.ts';
import { cancelSignal, progressQuery, rankLostSignal } from '../orchestration/messages.ts';
import { RankProcesses } from '../supervisor/rank-processes.ts';
import type { StepReport } from '../worker/trainer.ts';
import { startCoordinatorTelemetry } from './coordinator-telemetry.ts';
import { type HostTelemetry, startHostTelemetry } from './host-telemetry.ts';
import { createProgress, formatEpochLine } from './progress.ts';
import { runIdFor } from './run-id.ts';
import { localTemporal, resultOf, startOrAttach } from './run-workflow.ts';
import { checkpointUri, startCliTelemetry, type TelemetryFlags } from './telemetry-options.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'bbn.mjs');
/** How often the supervisor asks the workflow for its world size (to follow `bbn scale`). */
const FOLLOW_MS = 1_000;

/** Options of {@link trainDurably}. */
export interface DurableTrainOptions {
  readonly cfg: RunConfig;
  readonly outDir: string;
  readonly workers: number;
  readonly resume: boolean;
  /** Workflow run id; default the run directory's name. */
  readonly runId?: string;
  /** Temporal frontend to use instead of the embedded default. */
  readonly temporal?: string;
  readonly temporalNamespace?: string;
  /** How to start one rank (W > 1), before its options; default `node bin/bbn.mjs worker`. */
  readonly workerCommand?: readonly string[];
  /** Each line a rank process prints; default stdout, prefixed `[rank r]`. */
  readonly onRankLine?: (rank: number, line: string) => void;
  /** Called after each rank process spawned (tests inject faults). */
  readonly onSpawn?: (rank: number, child: import('node:child_process').ChildProcess) => void;
  /** Lines for people; default stderr. */
  readonly say?: (line: string) => void;
  /** Workflow timeouts and restart budget (defaults: `DEFAULT_TIMEOUTS`, `DEFAULT_RESTART_POLICY`). */
  readonly timeouts?: Partial<RunTimeouts>;
  readonly restart?: Partial<RestartPolicy>;
  /**
   * The ranks run elsewhere (Kubernetes pods running `bbn worker --temporal`): host only the
   * workflow, re-attach to a running run, and continue a stopped one from its checkpoints.
   */
  readonly externalRanks?: boolean;
  /** `--nats`, `--metrics-port`, `--metrics-host`: events and Prometheus metrics of the run's ranks. */
  readonly telemetry?: TelemetryFlags;
  /** Restart delay of a dead local rank process (ms); default 1 s. */
  readonly rankRestartDelayMs?: number;
  /** Where the coordinator's heartbeat server binds (W > 1); default 127.0.0.1, any free port. */
  readonly coordinator?: Partial<BindAddress>;
}

/** Whether the run's only rank trains in this process (W = 1, ranks not elsewhere). */
function inProcessRun(o: DurableTrainOptions): boolean {
  return !o.externalRanks && o.workers === 1 && o.cfg.distributed.workers <= 1;
}

/**
 * Runs (or re-attaches to) the run's workflow until it ends; resolves with its result. Once the
 * run is started, its end (completed, stopped or failed) is published by this host (host-telemetry.ts),
 * after the ranks have stopped.
 */
export async function trainDurably(o: DurableTrainOptions): Promise<TrainingResult> {
  const hosting: { telemetry?: HostTelemetry } = {};
  try {
    const result = await hostRun(o, hosting);
    await hosting.telemetry?.end(result);
    return result;
  } catch (err) {
    await hosting.telemetry?.fail(err);
    throw err;
  }
}

async function hostRun(
  o: DurableTrainOptions,
  hosting: { telemetry?: HostTelemetry },
): Promise<TrainingResult> {
  const say = o.say ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (!Number.isInteger(o.workers) || o.workers < 1) {
    throw new ConfigError(`--workers (${o.workers}) must be an integer >= 1`);
  }
  const outDir = resolve(o.outDir);
  const runId = o.runId ?? runIdFor(outDir);
  const inProcess = inProcessRun(o);
  const { address, server } = await localTemporal(outDir, o.temporal, say);
  // A given server gets the credentials Secret's TLS/API key; the embedded dev server needs none.
  const connection = await connectTemporal(address, { local: !!server }).catch(async (err: unknown) => {
    await server?.stop();
    throw err;
  });
  const client = new Client({ connection, namespace: o.temporalNamespace ?? 'default' });
  const cleanups: (() => Promise<unknown>)[] = [];
  let interrupts = 0;
  /** Client calls in flight (the stop, world-size queries, loss reports), awaited before the connection closes. */
  const inFlight = new Set<Promise<unknown>>();
  const track = (call: Promise<unknown>) => {
    const settled = call.catch(() => {}).finally(() => inFlight.delete(settled));
    inFlight.add(settled);
  };
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) process.exit(130); // the workflow stays; `bbn train --resume` re-attaches
    say(`\nstopping run ${runId} with a final checkpoint (Ctrl-C again to leave it running)`);
    track(
      runHandle(client, runId)
        .signal(cancelSignal)
        .catch((err: Error) => say(`could not stop run ${runId}: ${err.message}`)),
    );
  };
  process.on('SIGINT', onSigint);
  let ranks: RankProcesses | undefined;
  try {
    const handle = await startOrAttach(client, runId, outDir, o, say, inProcess);
    /** A lost rank, from the supervisor or the coordinator: the workflow abandons the epoch at once. */
    const reportLoss = (loss: RankLost) => {
      say(`run ${runId}: rank ${loss.rank} ${loss.detail}`);
      track(
        handle
          .signal(rankLostSignal, loss)
          .catch((err: Error) => say(`could not tell run ${runId} about rank ${loss.rank}: ${err.message}`)),
      );
    };
    hosting.telemetry = await startHostTelemetry({
      runId,
      cfg: o.cfg,
      outDir,
      flags: o.telemetry ?? {},
      say,
    });
    const hostTelemetry = hosting.telemetry;
    const { cachedTrainingWorkflowBundle, installTemporalRuntime } = await import(
      '../orchestration/worker.ts'
    );
    const { hostCoordinator } = await import('../orchestration/coordinator-host.ts');
    const workflows = await cachedTrainingWorkflowBundle(bbnCacheDir());
    installTemporalRuntime();
    const native = await connectTemporalWorker(address, { local: !!server });
    cleanups.push(() => native.close());
    // W = 1 in this process reports its own telemetry (trainHere); otherwise the coordinator does.
    const coordTelemetry = inProcess
      ? undefined
      : await startCoordinatorTelemetry(
          // Locally the ranks take --metrics-port P + rank: the coordinator takes any free port.
          o.externalRanks
            ? (o.telemetry ?? {})
            : { ...o.telemetry, metricsPort: o.telemetry?.metricsPort && '0' },
          { runId, cfg: o.cfg },
        );
    if (coordTelemetry) cleanups.push(() => coordTelemetry.close());
    if (coordTelemetry?.metricsUrl) say(`coordinator metrics at ${coordTelemetry.metricsUrl}`);
    const coordinator = await hostCoordinator({
      connection: native,
      namespace: o.temporalNamespace,
      runId,
      workflows,
      bind: inProcess ? null : { host: o.coordinator?.host ?? '127.0.0.1', port: o.coordinator?.port ?? 0 },
      onLost: (v) => reportLoss({ rank: v.rank, cause: v.cause, detail: v.detail, generation: v.generation }),
      onPlan: coordTelemetry?.plan,
      token: runTokenFromEnv(),
      say,
    });
    cleanups.push(() => coordinator.close());
    if (coordinator.address) say(`run ${runId}: coordinator listening on ${coordinator.address}`);
    /**
     * The workflow's progress, asked once a second (one query at a time, bounded: a query no worker
     * answers must not hold the exit): for the host's telemetry and announcements, the coordinator's
     * generation, and the world size the supervisor keeps.
     */
    let progress: RunProgress | undefined;
    const follow = setInterval(() => {
      if (inFlight.size > 0) return;
      track(
        connection
          .withDeadline(Date.now() + 2_000, () => handle.query(progressQuery))
          .then((p) => {
            progress = p;
            // A coordinator started again mid-epoch watches the generation its predecessor formed.
            if (p.state === 'training' && coordinator.server?.adopt(p.workers, p.generation)) {
              say(`run ${runId}: coordinator watching the ${p.workers} ranks of generation ${p.generation}`);
            }
            hostTelemetry.observe(p);
            ranks?.ensure(Math.max(p.workers, p.pendingWorkers ?? 0));
          }),
      );
    }, FOLLOW_MS);
    cleanups.push(async () => clearInterval(follow));
    if (inProcess) {
      return await trainHere(o, runId, native, coordinator.worker, () => resultOf(handle, runId, outDir));
    }
    if (coordinator.server) {
      coordTelemetry?.attach(coordinator.server, () => ({
        generation: progress?.generation ?? 0,
        workers: progress?.workers ?? o.workers,
      }));
    }
    if (o.externalRanks) {
      // The ranks are pods (`bbn worker --temporal --coordinator`); this process hosts the coordinator only.
      return await coordinator.worker.runUntil(resultOf(handle, runId, outDir));
    }
    ranks = new RankProcesses({
      command: (rank) => [
        ...(o.workerCommand ?? [process.execPath, BIN, 'worker']),
        '--temporal',
        address,
        '--temporal-namespace',
        o.temporalNamespace ?? 'default',
        '--coordinator',
        coordinator.address ?? '',
        '--run-id',
        runId,
        '--rank',
        String(rank),
        ...telemetryArgs(o.telemetry, rank),
        '--backend',
        o.cfg.compute.backend,
        ...(o.cfg.compute.threads ? ['--threads', String(o.cfg.compute.threads)] : []),
      ],
      onLine: o.onRankLine ?? ((rank, line) => process.stdout.write(`[rank ${rank}] ${line}\n`)),
      onSpawn: o.onSpawn,
      onRetired: (rank, remaining) => hostTelemetry.rankLeft(rank, remaining),
      restartDelayMs: o.rankRestartDelayMs,
      // The process belonged to the generation the coordinator watches now (none while one forms).
      onLost: (loss) =>
        reportLoss({
          rank: loss.rank,
          cause: loss.cause,
          detail: loss.detail,
          generation: coordinator.server?.watchedGeneration() ?? undefined,
        }),
    });
    const supervised = ranks;
    cleanups.push(() => supervised.close());
    supervised.ensure(o.workers);
    return await coordinator.worker.runUntil(
      Promise.race([resultOf(handle, runId, outDir), supervised.failed]),
    );
  } finally {
    process.off('SIGINT', onSigint);
    for (const c of cleanups.reverse()) await c().catch(() => {});
    // Calls in flight must not outlive their connection (a client retry after close throws).
    await Promise.allSettled(inFlight);
    await connection.close();
    await server?.stop();
  }
}

/** W = 1: the rank runtime in this process too (the model on its compute thread), with the progress bar. */
async function trainHere(
  o: DurableTrainOptions,
  runId: string,
  native: import('@temporalio/worker').NativeConnection,
  coordinator: import('@temporalio/worker').Worker,
  result: () => Promise<TrainingResult>,
): Promise<TrainingResult> {
  const { createLocalDeps } = await import('../orchestration/local.ts');
  const { createTrainingWorker } = await import('../orchestration/worker.ts');
  const say = o.say ?? ((l: string) => process.stderr.write(`${l}\n`));
  const progress = createProgress();
  const telemetry = await startCliTelemetry(o.telemetry ?? {}, {
    runId,
    cfg: o.cfg,
    role: 'trainer',
    checkpointUri: (epoch, step) => checkpointUri(resolve(o.outDir), epoch, step),
  });
  if (telemetry.metricsUrl) say(`metrics at ${telemetry.metricsUrl}`);
  const deps = createLocalDeps({
    log: say,
    onOpen: (_cfg, _layout, backend) => say(`backend: ${backend} (on the compute thread)`),
    onStep: (r: StepReport, epochs) => {
      telemetry.onStep(r);
      progress.step({ ...r, epochs, stepsPerSecond: 1 / Math.max(1e-9, r.computeSeconds + r.reduceSeconds) });
    },
    onEpoch: (m, epochs) => {
      telemetry.onEpoch(m);
      progress.endEpoch(formatEpochLine(m, epochs));
    },
  });
  // The run's end (status, run-end) is the host's to publish (host-telemetry.ts), after this closes.
  try {
    const rank = await createTrainingWorker({
      connection: native,
      namespace: o.temporalNamespace,
      taskQueue: rankTaskQueue(runId, 0),
      deps,
    });
    const ended = result();
    const [r] = await Promise.all([rank.runUntil(ended), coordinator.runUntil(ended)]);
    return r;
  } catch (err) {
    telemetry.failed((err as Error).message.split('\n')[0]);
    throw err;
  } finally {
    progress.close();
    await deps.dispose();
    await telemetry.close();
  }
}

/** The telemetry flags a rank process gets (each rank its own metrics port when one was asked). */
function telemetryArgs(flags: TelemetryFlags | undefined, rank: number): string[] {
  const args: string[] = [];
  if (flags?.nats) args.push('--nats', flags.nats);
  if (flags?.metricsPort !== undefined) {
    const port = Number(flags.metricsPort);
    args.push('--metrics-port', String(port === 0 ? 0 : port + rank));
  }
  if (flags?.metricsHost) args.push('--metrics-host', flags.metricsHost);
  return args;
}
