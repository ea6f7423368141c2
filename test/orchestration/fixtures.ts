/**
 * Shared pieces of the orchestration tests: the tiny synthetic run config (as in
 * test/worker/trainer.test.ts), temporary directories, and reading a run's final weights.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NativeConnection, WorkflowBundleOption } from '@temporalio/worker';
import type { RunConfig } from '../../src/core/config.ts';
import type { TrainingDeps } from '../../src/orchestration/activities.ts';
import { rankTaskQueue } from '../../src/orchestration/api.ts';
import { type HostedCoordinator, hostCoordinator } from '../../src/orchestration/coordinator-host.ts';
import { createTrainingWorker } from '../../src/orchestration/worker.ts';
import { loadLatestGood } from '../../src/worker/checkpoint.ts';
import { runPaths } from '../../src/worker/run-dir.ts';
import { tinyConfig as sharedTiny } from '../helpers/tiny.ts';

/** The shared tiny problem (test/helpers/tiny.ts) for `epochs` epochs (5 steps each). */
export function tinyConfig(epochs = 2): RunConfig {
  return sharedTiny({ train: { epochs } });
}

/** A fresh temporary directory. */
export const tempDir = (prefix = 'bbn-orch-'): string => mkdtempSync(join(tmpdir(), prefix));

/** Parameters of the newest good checkpoint of the run in `dir`. */
export function finalParams(dir: string): Float32Array {
  const latest = loadLatestGood(runPaths(dir).checkpoints);
  assert.ok(latest, `a checkpoint in ${dir}`);
  return latest.checkpoint.sections.params;
}

/** Test timeouts: a dead worker is noticed within about 2 s. */
export const TEST_TIMEOUTS = { heartbeatMs: 2_000, scheduleToStartMs: 60_000 } as const;

/**
 * Runs `body` while run `runId` is served in this process: the coordinator's worker (the
 * workflow, plans; a heartbeat server when `heartbeats` is set, for ranks in other processes) and
 * a rank worker for each of `ranks` (rank r on its own queue).
 */
export async function serveRun<T>(
  o: {
    readonly connection: NativeConnection;
    readonly runId: string;
    readonly workflows: WorkflowBundleOption | true;
    readonly ranks?: readonly TrainingDeps[];
    readonly heartbeats?: boolean;
  },
  body: (coordinator: HostedCoordinator) => Promise<T>,
): Promise<T> {
  const coordinator = await hostCoordinator({
    connection: o.connection,
    runId: o.runId,
    workflows: o.workflows,
    bind: o.heartbeats ? { host: '127.0.0.1', port: 0 } : null,
  });
  try {
    const ranks = await Promise.all(
      (o.ranks ?? []).map((deps, rank) =>
        createTrainingWorker({ connection: o.connection, taskQueue: rankTaskQueue(o.runId, rank), deps }),
      ),
    );
    let done: (() => void) | undefined;
    const ended = new Promise<void>((r) => (done = r));
    const served = ranks.map((w) => w.runUntil(ended));
    try {
      return await coordinator.worker.runUntil(() => body(coordinator));
    } finally {
      done?.();
      await Promise.allSettled(served);
    }
  } finally {
    await coordinator.close();
  }
}
