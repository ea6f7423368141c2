/**
 * Shared pieces of the orchestration tests: the tiny synthetic run config (as in
 * test/worker/trainer.test.ts), temporary directories, and reading a run's final weights.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunConfig } from '../../src/core/config.ts';
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
