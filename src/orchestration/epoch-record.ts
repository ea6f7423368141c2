/**
 * What rank 0 recorded of an epoch, read back from the run directory: a process that died after
 * recording an epoch (metrics row, then checkpoint) and before Temporal heard of it answers the
 * retried calls from this record instead of training the epoch twice.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointFileName } from '../worker/checkpoint.ts';
import { type EpochMetrics, readMetrics, runPaths } from '../worker/run-dir.ts';
import type { EpochSummary } from './api.ts';

/** Epoch `epoch`'s metrics row and end-of-epoch checkpoint, when both are on disk (rank 0 wrote them in that order). */
export function recordedEpoch(
  outDir: string,
  epoch: number,
): { row: EpochMetrics; checkpoint: string } | null {
  const row = readMetrics(outDir, epoch).find((m) => m.epoch === epoch);
  const checkpoint = join(runPaths(outDir).checkpoints, checkpointFileName(epoch, 0));
  return row && existsSync(checkpoint) ? { row, checkpoint } : null;
}

/** What the workflow records of an evaluated epoch. */
export function summaryOf(row: EpochMetrics, checkpoint: string): EpochSummary {
  return {
    epoch: row.epoch,
    alpha: row.alpha,
    lr: row.lr,
    trainLoss: row.trainLoss,
    testTop1: row.testTop1,
    many: row.many,
    medium: row.medium,
    few: row.few,
    checkpoint,
  };
}
