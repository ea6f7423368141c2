/**
 * Shared pieces of the orchestration tests: the tiny synthetic run config (as in
 * test/worker/trainer.test.ts), temporary directories, and reading a run's final weights.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRunConfig, type RunConfig } from '../../src/core/config.ts';
import { loadLatestGood } from '../../src/worker/checkpoint.ts';
import { runPaths } from '../../src/worker/run-dir.ts';

/** A tiny learnable long-tailed problem: 4 classes of 8x8 synthetic images, ResNet-8 of width 4 (5 steps per epoch). */
export function tinyConfig(epochs = 2): RunConfig {
  return parseRunConfig({
    name: 'tiny',
    seed: 3,
    dataset: {
      kind: 'synthetic',
      numClasses: 4,
      perClass: 48,
      testPerClass: 12,
      imageSize: 8,
      channels: 1,
      imbalanceRatio: 8,
    },
    model: { depth: 8, baseWidth: 4 },
    train: {
      epochs,
      batchSize: 16,
      lr: 0.05,
      lrSchedule: { name: 'multistep', milestones: [3], gamma: 0.1 },
    },
    eval: { batchSize: 32, manyThreshold: 20, fewThreshold: 10 },
    checkpoint: { keep: 10 },
  });
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
