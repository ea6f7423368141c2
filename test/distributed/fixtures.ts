/** Shared fixtures of the distributed tests: the tiny config on disk and a launcher of real worker processes. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadRunConfig } from '../../src/cli/config-file.ts';
import { trainDurably } from '../../src/cli/durable-train.ts';
import { parseRunConfig, type RunConfig } from '../../src/core/config.ts';
import { loadLatestGood } from '../../src/worker/checkpoint.ts';
import { runPaths } from '../../src/worker/run-dir.ts';
import { tinyRun } from '../helpers/tiny.ts';

/** The shared tiny problem (test/helpers/tiny.ts), 3 epochs. */
export const TINY = tinyRun({ name: 'tiny-dist', train: { epochs: 3 } });

/** The tiny config, parsed. */
export function tinyConfig(): RunConfig {
  return parseRunConfig(structuredClone(TINY));
}

const made: string[] = [];

/**
 * Overrides of the tiny config for a fault injected in the middle of epoch 2: 2 epochs of 1,800
 * images, MID_EPOCH_STEPS steps each (floor(1800 / 16)), 4 s or more even where a step takes
 * 38 ms, so a watcher of the run's status (a rank's step arrives within about a second) sees a
 * rank inside epoch 2 before it ends. (600 images, 1.4 s an epoch, could be missed.)
 */
export const MID_EPOCH_RUN: readonly string[] = ['dataset.perClass=960', 'train.epochs=2'];
export const MID_EPOCH_STEPS = 112;

/** A fresh temporary directory, removed by `removeTempDirs`. */
export function tempDir(prefix = 'bbn-dist-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Removes every directory `tempDir` made. */
export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Writes the tiny config as YAML and returns its path. */
export function writeTinyConfig(): string {
  const path = join(tempDir('bbn-cfg-'), 'tiny.yaml');
  writeFileSync(path, stringify(TINY));
  return path;
}

/** What {@link launch} runs: a config file with overrides, or (with `resume`) the run in `outDir`. */
export interface LaunchOptions {
  readonly configPath?: string;
  readonly overrides?: readonly string[];
  readonly outDir: string;
  readonly workers: number;
  readonly resume?: boolean;
  /** A Temporal server to use (default: the embedded dev server of `bbn train`). */
  readonly temporal?: string;
  /** Default: the run directory's name. */
  readonly runId?: string;
}

/**
 * A durable run as `bbn train --workers W` runs it (rank processes, coordinator, ring), with every
 * line it prints collected (the ranks' prefixed `[rank r]`), and its wall time.
 */
export async function launch(opts: LaunchOptions, tap?: (rank: number, line: string) => void) {
  const lines: string[] = [];
  const cfg = opts.configPath
    ? loadRunConfig(opts.configPath, [...(opts.overrides ?? [])])
    : loadRunConfig(runPaths(opts.outDir).config, [...(opts.overrides ?? [])]);
  const started = performance.now();
  const result = await trainDurably({
    cfg,
    outDir: opts.outDir,
    workers: opts.workers,
    resume: !!opts.resume,
    temporal: opts.temporal,
    runId: opts.runId,
    say: (line) => lines.push(line),
    onRankLine: (rank, line) => {
      lines.push(`[rank ${rank}] ${line}`);
      tap?.(rank, line);
    },
  });
  const seconds = (performance.now() - started) / 1000;
  const outcome = {
    kind: result.state === 'completed' ? ('finished' as const) : ('stopped' as const),
    seconds,
  };
  return { outcome, lines, result };
}

/** Relative L2 distance ‖a − b‖ / ‖b‖ and the largest absolute difference. */
export function distance(a: Float32Array, b: Float32Array): { rel: number; maxAbs: number } {
  let d = 0;
  let n = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] - b[i];
    d += x * x;
    n += b[i] * b[i];
    maxAbs = Math.max(maxAbs, Math.abs(x));
  }
  return { rel: Math.sqrt(d / n), maxAbs };
}

/** Rank 0's final parameters in `dir`. */
export function finalParams(dir: string): Float32Array {
  const latest = loadLatestGood(runPaths(dir).checkpoints);
  if (!latest) throw new Error(`no checkpoint in ${dir}`);
  return latest.checkpoint.sections.params;
}
