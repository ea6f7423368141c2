/**
 * The workflow side of `bbn train`: the Temporal server a local run uses (the given one, or an
 * embedded dev server with its state in the run directory), starting the run's workflow or
 * re-attaching to it, and its result as the CLI reports it (a failed run names its innermost cause
 * and how to continue it).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { ConfigError } from '../core/config.ts';
import type { LocalServer } from '../devservers/api.ts';
import { freePort, portIsFree, startTemporalDevServer } from '../devservers/index.ts';
import type { TrainingInput, TrainingResult } from '../orchestration/api.ts';
import { runHandle, startRun } from '../orchestration/client.ts';
import { listCheckpoints } from '../worker/checkpoint.ts';
import { runPaths } from '../worker/run-dir.ts';
import type { DurableTrainOptions } from './durable-train.ts';
import { runIdFor } from './run-id.ts';

/**
 * The Temporal server of a local run: the given one, else a dev server with its state in
 * `<out>/.temporal`, on port 7233 when free. A server already on 7233 is not borrowed: it may be
 * another `bbn train`'s embedded one, which stops when that run ends.
 */
export async function localTemporal(
  outDir: string,
  given: string | undefined,
  say: (line: string) => void,
): Promise<{ address: string; server?: LocalServer }> {
  const address = given ?? process.env.BBN_TEMPORAL_ADDRESS;
  if (address) return { address };
  const dataDir = join(outDir, '.temporal');
  mkdirSync(dataDir, { recursive: true });
  let server: LocalServer | undefined;
  if (await portIsFree(7233)) {
    // Another run may take the port between the check and the bind: then any free port does.
    server = await startTemporalDevServer({ dataDir, port: 7233 }).catch(() => undefined);
  }
  server ??= await startTemporalDevServer({ dataDir, port: await freePort() });
  const flag = server.port === 7233 ? '' : ` --temporal ${server.address}`;
  say(
    `temporal: dev server on ${server.address} (state in ${dataDir}); bbn status ${runIdFor(outDir)}${flag}`,
  );
  return { address: server.address, server };
}

/**
 * A run that failed: the reason a user can act on, from the innermost cause of the workflow's
 * failure, on one line. Printed like a user error but not one: the CLI exits 1 (README's table).
 */
export class RunFailedError extends Error {
  override name = 'RunFailedError';
  readonly userFacing = true;
  readonly exitCode = 1;
}

/** The workflow's result; a failed run becomes a ConfigError (bad config or data) or a RunFailedError. */
export async function resultOf(
  handle: { result(): Promise<TrainingResult> },
  runId: string,
  outDir: string,
): Promise<TrainingResult> {
  try {
    return await handle.result();
  } catch (err) {
    let e = err as { message?: string; cause?: unknown; type?: string } | undefined;
    while (e?.cause) e = e.cause as typeof e;
    const message = e?.message ?? String(err);
    if (e?.type === 'ConfigError') throw new ConfigError(message);
    const reason = message.split('\n')[0];
    throw new RunFailedError(
      `run ${runId} failed: ${reason}; once fixed, continue it from its last good checkpoint with bbn train --resume ${outDir}`,
    );
  }
}

/** Starts the run's workflow, or re-attaches to it when it is still running and `resume` was asked. */
export async function startOrAttach(
  client: Client,
  runId: string,
  outDir: string,
  o: DurableTrainOptions,
  say: (line: string) => void,
  inProcess: boolean,
) {
  const existing = runHandle(client, runId);
  const status = await existing.describe().then(
    (d) => d.status.name,
    () => undefined,
  );
  if (status === 'RUNNING') {
    if (!o.resume && !o.externalRanks) {
      throw new ConfigError(
        `run ${runId} is already running on this Temporal server; follow it with bbn status ${runId}, or re-attach with bbn train --resume ${outDir}`,
      );
    }
    say(`run ${runId}: re-attached to the running workflow`);
    return existing;
  }
  if (status === 'COMPLETED' && o.externalRanks) {
    say(`run ${runId}: already completed`);
    return existing;
  }
  const hasCheckpoints =
    existsSync(runPaths(outDir).checkpoints) && listCheckpoints(runPaths(outDir).checkpoints).length > 0;
  // A cluster orchestrator (re)started on a run directory with checkpoints continues that run.
  const resume = o.resume || (!!o.externalRanks && hasCheckpoints);
  if (!resume && hasCheckpoints) {
    // prepareRun would refuse too; say it before anything starts.
    throw new ConfigError(
      `${outDir} already holds checkpoints of a run; resume it with bbn train --resume ${outDir}`,
    );
  }
  const input: TrainingInput = {
    runId,
    config: o.cfg,
    outDir,
    workers: Math.max(o.workers, o.cfg.distributed.workers),
    resume,
    // One rank in this process has no ring and no heartbeat server: `bbn scale` is refused clearly.
    maxWorkers: inProcess ? 1 : undefined,
    timeouts: o.timeouts,
    restart: o.restart,
  };
  const handle = await startRun(client, input);
  say(`run ${runId}: started (workflow ${handle.workflowId}, ${input.workers} worker(s))`);
  return handle;
}
