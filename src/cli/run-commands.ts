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
import { rankTaskQueue, type TrainingResult } from '../orchestration/api.ts';
import type { RunStatus } from '../orchestration/client.ts';

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

async function withClient<T>(t: TemporalTarget, body: (client: Client) => Promise<T>): Promise<T> {
  const { Client, Connection } = await import('@temporalio/client');
  const connection = await Connection.connect({ address: t.temporal });
  try {
    return await body(new Client({ connection, namespace: t.temporalNamespace ?? 'default' }));
  } finally {
    await connection.close();
  }
}

/** What `bbn launch` (without --k8s) submits. */
export interface TemporalLaunchOptions extends TemporalTarget {
  readonly config: RunConfig;
  readonly runId: string;
  readonly outDir: string;
  readonly workers: number;
  readonly resume?: boolean;
  /**
   * Also host rank 0's Temporal worker (workflow + in-process trainer, W=1) here and wait for the
   * run to finish; with several workers or without this flag, `bbn worker` processes serve it.
   */
  readonly localWorker?: { readonly backend: BackendPreference };
}

/** Submits the run; with `localWorker`, serves it in this process until it ends. */
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
  const { startRun } = await runOps();
  return withClient(o, async (client) => {
    const handle = await startRun(client, input);
    out.write(
      `run ${o.runId}: submitted (workflow ${handle.workflowId}), ${o.workers} worker(s), out ${input.outDir}\n`,
    );
    if (!o.localWorker) {
      out.write(`serve it with ${o.workers} \`bbn worker\` process(es); watch with: bbn status ${o.runId}\n`);
      return undefined;
    }
    // Imported here so that submit-only commands do not load tfjs.
    const { NativeConnection } = await import('@temporalio/worker');
    const { createLocalDeps } = await import('../orchestration/local.ts');
    const { createTrainingWorker } = await import('../orchestration/worker.ts');
    const { selectBackend } = await import('../model/backend.ts');
    const backend = await selectBackend(o.localWorker.backend);
    const deps = createLocalDeps({ backend: backend.name });
    const native = await NativeConnection.connect({ address: o.temporal });
    try {
      const worker = await createTrainingWorker({
        connection: native,
        namespace: o.temporalNamespace,
        taskQueue: rankTaskQueue(o.runId, 0),
        deps,
        workflows: true,
      });
      const result = await worker.runUntil(() => handle.result());
      out.write(
        `run ${o.runId}: ${result.state} after ${result.epochs.at(-1)?.epoch ?? 0} epoch(s); checkpoint ${result.checkpoint}\n`,
      );
      return result;
    } finally {
      await deps.dispose();
      await native.close();
    }
  });
}

/** Formats a run's status for people. */
export function formatRunStatus(s: RunStatus): string {
  const pct = (x: number | null | undefined) => (x == null ? '-' : `${(100 * x).toFixed(2)}%`);
  const lines = [
    `run ${s.runId}: ${s.state} (${s.execution}), epoch ${Math.min(s.epoch, s.totalEpochs)}/${s.totalEpochs}, ` +
      `workers ${s.workers}${s.pendingWorkers !== null ? ` -> ${s.pendingWorkers} at the next epoch` : ''}, ` +
      `generation ${s.generation}, restarts ${s.restartsUsed}`,
    `  alpha ${s.alpha ?? '-'}  lr ${s.lr ?? '-'}  steps/epoch ${s.steps}`,
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
        (r.lastFailure ? `, last failure: ${r.lastFailure}` : ''),
    );
  }
  for (const f of s.failures) {
    lines.push(`  failure: epoch ${f.epoch} generation ${f.generation} rank ${f.rank ?? '-'}: ${f.message}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `bbn status RUN` (Temporal): progress, ranks' live positions, failures. */
export async function temporalStatus(
  runId: string,
  t: TemporalTarget & { json?: boolean },
  out: RunCommandOutput = process.stdout,
): Promise<RunStatus> {
  const { runStatus } = await runOps();
  const status = await withClient(t, (client) => runStatus(client, runId));
  out.write(t.json ? `${JSON.stringify(status, null, 2)}\n` : formatRunStatus(status));
  return status;
}

/** `bbn scale RUN W` (Temporal): validated by the workflow, applied at the next epoch boundary. */
export async function temporalScale(
  runId: string,
  workers: number,
  t: TemporalTarget,
  out: RunCommandOutput = process.stdout,
): Promise<void> {
  const { scaleRun } = await runOps();
  await withClient(t, (client) => scaleRun(client, runId, workers));
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
