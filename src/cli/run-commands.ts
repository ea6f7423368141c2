/**
 * The Temporal side of `bbn launch | status | scale` (called from launch-command.ts when `--k8s` is
 * not given) and the `bbn pause | resume | cancel RUN` commands. Thin: each connects a Temporal
 * client and calls src/orchestration/client.ts.
 */

import { resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import type { RunConfig } from '../core/config.ts';
import type { BackendPreference } from '../model/backend.ts';
import { rankTaskQueue, type TrainingInput, type TrainingResult } from '../orchestration/api.ts';
import type { RunStatus } from '../orchestration/client.ts';
import { connectTemporal, connectTemporalWorker } from '../orchestration/connect.ts';
import { claimRunDir } from '../worker/run-claim.ts';

/** The run operations of src/orchestration/client.ts, imported on use (the Temporal SDK is slow to load). */
const runOps = () => import('../orchestration/client.ts');

/** Where the commands print (tests pass their own). */
export interface RunCommandOutput {
  write(text: string): unknown;
}

/** Temporal frontend used when neither `--temporal` nor BBN_TEMPORAL_ADDRESS is given. */
export const LOCAL_TEMPORAL_ADDRESS = 'localhost:7233';

/** Where to reach Temporal. */
export interface TemporalTarget {
  readonly temporal: string;
  readonly temporalNamespace?: string;
}

/** A Temporal server that is not there, or a run it does not know: one line for the user (exit 2). */
export class RunNotReachableError extends Error {
  override name = 'RunNotReachableError';
  readonly userFacing = true;
}

/** A run whose workflow is running but whose workers did not answer its status in time. */
export class RunBusyError extends RunNotReachableError {
  override name = 'RunBusyError';
}

/** `bbn scale` refused by the run's workflow (one line for the user, exit 2; the run goes on). */
export class RunScaleRefusedError extends Error {
  override name = 'RunScaleRefusedError';
  readonly userFacing = true;
}

/** How long a command waits for the Temporal server to answer the connection. */
const CONNECT_TIMEOUT_MS = 2_000;

async function withClient<T>(t: TemporalTarget, body: (client: Client) => Promise<T>): Promise<T> {
  const { Client } = await import('@temporalio/client');
  const connection = await connectTemporal(t.temporal, {
    timeoutMs: CONNECT_TIMEOUT_MS,
    hint: "give the address of the run's server with --temporal HOST:PORT, or, for a finished or stopped local run, its directory: bbn status runs/NAME",
  });
  try {
    return await body(new Client({ connection, namespace: t.temporalNamespace ?? 'default' }));
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') {
      throw new RunNotReachableError(
        `the Temporal server at ${t.temporal} (namespace ${t.temporalNamespace ?? 'default'}) has no run ${runIdOf(err)}`,
      );
    }
    throw err;
  } finally {
    await connection.close();
  }
}

/** The run id of a WorkflowNotFoundError (its workflow id is `bbn-run-<id>`). */
function runIdOf(err: unknown): string {
  const id = String((err as { workflowId?: string }).workflowId ?? '');
  return id.replace(/^bbn-run-/, '') || '(unknown)';
}

/** What `bbn launch` (without --k8s) submits. */
export interface TemporalLaunchOptions extends TemporalTarget {
  readonly config: RunConfig;
  readonly runId: string;
  readonly outDir: string;
  readonly workers: number;
  readonly resume?: boolean;
  /**
   * Also serve rank 0 in this process (W=1, in-process trainer); otherwise `bbn worker` processes
   * serve the ranks. This process hosts the run's coordinator either way, until the run ends.
   */
  readonly localWorker?: { readonly backend: BackendPreference };
}

/** Submits the run and hosts its coordinator (and, with `localWorker`, rank 0) until it ends. */
export async function temporalLaunch(
  o: TemporalLaunchOptions,
  out: RunCommandOutput = process.stdout,
): Promise<TrainingResult | undefined> {
  const input = {
    runId: o.runId,
    config: o.config,
    outDir: resolve(o.outDir),
    workers: o.workers,
    resume: o.resume,
  };
  // As `bbn train`: not another run's directory, and locked while this process trains into it.
  const claim = claimRunDir(input.outDir, o.config, { resume: !!o.resume, lock: !!o.localWorker });
  try {
    return await submitAndServe(o, input, out);
  } finally {
    claim.release();
  }
}

async function submitAndServe(
  o: TemporalLaunchOptions,
  input: TrainingInput,
  out: RunCommandOutput,
): Promise<TrainingResult | undefined> {
  const { startRun } = await runOps();
  return withClient(o, async (client) => {
    const handle = await startRun(client, input);
    out.write(
      `run ${o.runId}: submitted (workflow ${handle.workflowId}), ${o.workers} worker(s), out ${input.outDir}\n`,
    );
    // Imported here so that submit-only commands do not load tfjs.
    const { hostCoordinator } = await import('../orchestration/coordinator-host.ts');
    const { createTrainingWorker } = await import('../orchestration/worker.ts');
    const native = await connectTemporalWorker(o.temporal);
    const coordinator = await hostCoordinator({
      connection: native,
      namespace: o.temporalNamespace,
      runId: o.runId,
      workflows: true,
      bind: o.localWorker && o.workers === 1 ? null : { host: '127.0.0.1', port: 0 },
      onLost: (v) => out.write(`run ${o.runId}: rank ${v.rank} ${v.detail}\n`),
      say: (line) => out.write(`${line}\n`),
    });
    const deps = o.localWorker
      ? (await import('../orchestration/local.ts')).createLocalDeps({
          compute: { backend: o.localWorker.backend },
        })
      : undefined;
    try {
      if (coordinator.address) {
        out.write(
          `serve it with ${o.workers} \`bbn worker --temporal ${o.temporal} --run-id ${o.runId} --rank R --coordinator ${coordinator.address}\` process(es); watch with: bbn status ${o.runId}\n`,
        );
      }
      const ended = handle.result();
      const rank = deps
        ? await createTrainingWorker({
            connection: native,
            namespace: o.temporalNamespace,
            taskQueue: rankTaskQueue(o.runId, 0),
            deps,
          })
        : undefined;
      const [result] = await Promise.all([coordinator.worker.runUntil(ended), rank?.runUntil(ended)]);
      out.write(
        `run ${o.runId}: ${result.state} after ${result.epochs.at(-1)?.epoch ?? 0} epoch(s); checkpoint ${result.checkpoint}\n`,
      );
      return result;
    } finally {
      await deps?.dispose();
      await coordinator.close();
      await native.close();
    }
  });
}

/** Formats a run's status for people. */
export function formatRunStatus(s: RunStatus): string {
  const pct = (x: number | null | undefined) => (x == null ? '-' : `${(100 * x).toFixed(2)}%`);
  // Paused, the workflow's `epoch` is the next one and its α, lr and steps are still the last
  // epoch's plan; while planning (start, restart) the plan may be either: say which epoch they are of.
  const between = s.state === 'paused';
  const planEpoch = between ? s.epoch - 1 : s.state === 'planning' || s.state === 'preparing' ? 0 : s.epoch;
  const where = between
    ? `epoch ${Math.min(planEpoch, s.totalEpochs)}/${s.totalEpochs} done` +
      (s.epoch <= s.totalEpochs ? ` (next: epoch ${s.epoch})` : '')
    : `epoch ${Math.min(s.epoch, s.totalEpochs)}/${s.totalEpochs}`;
  const lines = [
    `run ${s.runId}: ${s.state} (${s.execution}), ${where}, ` +
      `workers ${s.workers}${s.pendingWorkers !== null ? ` -> ${s.pendingWorkers} at the next epoch` : ''}, ` +
      `generation ${s.generation}, restarts ${s.restartsUsed}`,
    planEpoch >= 1 && s.alpha !== null
      ? `  epoch ${planEpoch}: alpha ${s.alpha}  lr ${s.lr ?? '-'}  steps/epoch ${s.steps}`
      : `  alpha ${s.alpha ?? '-'}  lr ${s.lr ?? '-'}  steps/epoch ${s.steps}`,
  ];
  if (s.lastMetrics) {
    const m = s.lastMetrics;
    lines.push(
      `  last epoch ${m.epoch}: train loss ${m.trainLoss.toFixed(4)}, top-1 ${pct(m.testTop1)} ` +
        `(many ${pct(m.many)}, medium ${pct(m.medium)}, few ${pct(m.few)})`,
    );
  }
  lines.push(`  checkpoint ${s.checkpoint ?? '-'}`);
  for (const r of s.ranks) {
    lines.push(
      `  rank ${r.rank}: epoch ${r.epoch} step ${r.step}, generation ${r.generation}, attempt ${r.attempt}, ` +
        `heartbeat ${r.heartbeatAgeSeconds === null ? '-' : `${r.heartbeatAgeSeconds.toFixed(1)} s ago`}` +
        (r.computeSeconds === null
          ? ''
          : `, step: compute ${r.computeSeconds.toFixed(2)} s, allreduce ${(r.reduceSeconds ?? 0).toFixed(2)} s`) +
        (r.stragglerRatio === null
          ? ''
          : ` (straggler: ${r.stragglerRatio.toFixed(1)}x the median compute)`) +
        (r.lastFailure ? `, last failure: ${r.lastFailure}` : ''),
    );
  }
  for (const l of s.lost ?? []) {
    lines.push(`  lost: rank ${l.rank} ${l.detail}; restarting the epoch from the last checkpoint`);
  }
  const rv = s.rendezvous;
  if (rv) {
    const waiting =
      rv.missing.length === 0
        ? 'every rank heard'
        : `waiting for the heartbeat of rank ${rv.missing.join(', ')}`;
    lines.push(`  forming generation ${rv.generation} of ${rv.world} ranks: ${waiting}`);
  }
  for (const f of s.failures) {
    lines.push(
      `  failure: epoch ${f.epoch} generation ${f.generation} rank ${f.rank ?? '-'}${f.cause ? ` (${f.cause})` : ''}: ${f.message}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** `bbn status RUN` (Temporal): progress, ranks' live positions, failures. */
export async function temporalStatus(
  runId: string,
  t: TemporalTarget & { json?: boolean },
  out: RunCommandOutput = process.stdout,
): Promise<RunStatus | ClosedRunStatus> {
  const status = await fetchRunStatus(runId, t);
  if (t.json) out.write(`${JSON.stringify(status, null, 2)}\n`);
  else out.write('ranks' in status ? formatRunStatus(status) : formatClosedRunStatus(status));
  return status;
}

/** The status of run `runId` from its Temporal server, unprinted; `queryMs` bounds the wait for its workers. */
export function fetchRunStatus(
  runId: string,
  t: TemporalTarget,
  queryMs = QUERY_TIMEOUT_MS,
): Promise<RunStatus | ClosedRunStatus> {
  return withClient(t, (client) => statusOf(client, runId, queryMs));
}

/** A run whose workflow has closed: how it ended, from its result (no worker needs to answer). */
export interface ClosedRunStatus {
  readonly runId: string;
  /** The workflow's execution status (COMPLETED, FAILED, TERMINATED, …). */
  readonly execution: string;
  readonly result: TrainingResult | null;
  /** Why it failed, when it did. */
  readonly failure: string | null;
}

/** How long a running workflow's workers get to answer the progress query. */
const QUERY_TIMEOUT_MS = 5_000;

/**
 * The status of run `runId`: live (progress query and pending activities) while its workflow
 * runs, else how it ended. A query needs a worker, which a closed run no longer has: asking one
 * would wait for the RPC deadline.
 */
async function statusOf(
  client: Client,
  runId: string,
  queryMs = QUERY_TIMEOUT_MS,
): Promise<RunStatus | ClosedRunStatus> {
  const { runHandle, runStatus } = await runOps();
  const handle = runHandle(client, runId);
  const execution = (await handle.describe()).status.name;
  if (execution === 'RUNNING') {
    try {
      return await client.connection.withDeadline(Date.now() + queryMs, () => runStatus(client, runId));
    } catch (err) {
      throw new RunBusyError(
        `run ${runId} is running on Temporal, but no worker answered its status within ${queryMs / 1000} s ` +
          `(is its bbn train, or are its bbn worker processes, still up?): ${(err as Error).message.split('\n')[0]}`,
      );
    }
  }
  try {
    return { runId, execution, result: await handle.result(), failure: null };
  } catch (err) {
    let e = err as { message?: string; cause?: unknown } | undefined;
    while (e?.cause) e = e.cause as typeof e;
    return { runId, execution, result: null, failure: e?.message ?? String(err) };
  }
}

/** Formats a closed run's status for people. */
export function formatClosedRunStatus(s: ClosedRunStatus): string {
  if (!s.result) return `run ${s.runId}: ${s.execution.toLowerCase()}${s.failure ? `: ${s.failure}` : ''}\n`;
  const last = s.result.epochs.at(-1);
  const top1 = last?.testTop1 == null ? '' : `, last top-1 ${(100 * last.testTop1).toFixed(2)}%`;
  return (
    `run ${s.runId}: ${s.result.state} (${s.execution}) after ${last?.epoch ?? 0} epoch(s)${top1}\n` +
    `  checkpoint ${s.result.checkpoint ?? '-'}\n`
  );
}

/** `bbn scale RUN W` (Temporal): validated by the workflow, applied at the next epoch boundary. */
export async function temporalScale(
  runId: string,
  workers: number,
  t: TemporalTarget,
  out: RunCommandOutput = process.stdout,
): Promise<void> {
  const { scaleRun } = await runOps();
  await withClient(t, (client) =>
    scaleRun(client, runId, workers).catch((err: Error) => {
      // The workflow's validator refused it (out of range, or a run that cannot scale): its reason.
      if (err.name !== 'WorkflowUpdateFailedError') throw err;
      let e = err as { message?: string; cause?: unknown };
      while (e.cause) e = e.cause as typeof e;
      throw new RunScaleRefusedError(e.message ?? err.message);
    }),
  );
  out.write(`run ${runId}: workers -> ${workers} at the next epoch boundary\n`);
}

/** Registers `pause`, `resume` and `cancel` (Temporal) on the `bbn` program. */
export function registerRunCommands(program: Command, out: RunCommandOutput = process.stdout): void {
  const target = (cmd: Command) =>
    cmd
      .argument('<run>', 'run id')
      .option(
        '--temporal <host:port>',
        'Temporal frontend',
        process.env.BBN_TEMPORAL_ADDRESS ?? LOCAL_TEMPORAL_ADDRESS,
      )
      .option('--temporal-namespace <ns>', 'Temporal namespace', 'default');
  target(program.command('pause').description('pause a run at its next epoch boundary')).action(
    async (run: string, t: TemporalTarget) => {
      const { pauseRun } = await runOps();
      await withClient(t, (client) => pauseRun(client, run));
      out.write(`run ${run}: pause requested (takes effect at the next epoch boundary)\n`);
    },
  );
  target(program.command('resume').description('resume a paused run')).action(
    async (run: string, t: TemporalTarget) => {
      const { resumeRun } = await runOps();
      await withClient(t, (client) => resumeRun(client, run));
      out.write(`run ${run}: resumed\n`);
    },
  );
  target(program.command('cancel').description('stop a run cleanly, with a final checkpoint')).action(
    async (run: string, t: TemporalTarget) => {
      const { cancelRun } = await runOps();
      const result = await withClient(t, (client) => cancelRun(client, run));
      out.write(`run ${run}: ${result.state}; final checkpoint ${result.checkpoint ?? '-'}\n`);
    },
  );
}
