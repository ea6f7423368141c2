/**
 * The run directory a training run writes (the user's `--out DIR`):
 *
 *   run.json         the run's identity (run id + digest of its model and data), written once
 *   config.yaml      the resolved configuration (every default filled in)
 *   metrics.jsonl    one JSON object per epoch (`EpochMetrics`)
 *   checkpoints/     atomic checkpoints, the newest K (see checkpoint.ts)
 *   summary.json     last-epoch and best-epoch top-1 error, written at the end of the run
 *
 * Small files are written atomically too (temporary file + rename), so a crash never leaves a
 * half-written summary or config behind.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { AccuracyReport } from '../core/metrics.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { listCheckpoints } from './checkpoint.ts';
import { fsReason, RunDirError } from './run-dir-error.ts';
import { identityDigest, readRunIdentity, writeRunIdentity } from './run-identity.ts';

/** One line of metrics.jsonl. */
export interface EpochMetrics {
  readonly epoch: number;
  readonly stage: 1 | 2;
  readonly alpha: number | null;
  readonly lr: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly testTop1: number;
  readonly perClass: readonly number[];
  readonly many: number | null;
  readonly medium: number | null;
  readonly few: number | null;
  readonly seconds: number;
  readonly stepsPerSecond: number;
  /** Steps dropped for a non-finite loss, gradient or update (`train.onNonFinite: skip`); absent when none. */
  readonly skippedSteps?: number;
}

/** summary.json: both the last and the best epoch, since the official code selects the best on the test set. */
export interface RunSummary {
  readonly name: string;
  readonly method: string;
  readonly epochs: number;
  readonly last: { readonly epoch: number; readonly top1: number; readonly top1Error: number } & ShotAccuracy;
  readonly best: { readonly epoch: number; readonly top1: number; readonly top1Error: number } & ShotAccuracy;
  readonly seconds: number;
  readonly backend: string;
  /** Training images per class (head to tail order is by these counts). */
  readonly trainCounts?: readonly number[];
  /** Confusion matrix of the last epoch, [true class][predicted class]. */
  readonly confusion?: readonly (readonly number[])[];
  /** Per-class L2 norms of the classifier weights at the end (paper Fig. 4): all, and BBN's halves. */
  readonly weightNorms?: {
    readonly all: NormSummary;
    readonly cb?: NormSummary;
    readonly rb?: NormSummary;
  };
}

/** Norms per class with their mean and standard deviation. */
export interface NormSummary {
  readonly norms: readonly number[];
  readonly mean: number;
  readonly std: number;
}

interface ShotAccuracy {
  readonly many: number | null;
  readonly medium: number | null;
  readonly few: number | null;
}

/** Paths of a run directory. */
export function runPaths(dir: string) {
  return {
    dir,
    config: join(dir, 'config.yaml'),
    metrics: join(dir, 'metrics.jsonl'),
    checkpoints: join(dir, 'checkpoints'),
    summary: join(dir, 'summary.json'),
  } as const;
}

/**
 * Creates the run directory of a new run: its identity (kept when the directory already has the
 * identity of this config, e.g. written by `claimRunDir`) and the resolved config. Refuses a
 * directory that holds checkpoints of a run with another model or data.
 */
export function initRunDir(dir: string, resolvedConfig: unknown): void {
  try {
    mkdirSync(runPaths(dir).checkpoints, { recursive: true });
  } catch (err) {
    throw new RunDirError(`cannot create run directory ${dir}: ${fsReason(err)}`);
  }
  const cfg = resolvedConfig as { name?: string };
  const existing = readRunIdentity(dir);
  if (!existing || existing.configDigest !== identityDigest(cfg)) {
    if (existing && listCheckpoints(runPaths(dir).checkpoints).length > 0) {
      throw new RunDirError(
        `${dir} already holds checkpoints of run ${existing.runId} with another model or data; choose another run directory`,
      );
    }
    writeRunIdentity(dir, cfg, { replace: !!existing });
  }
  try {
    writeFileAtomic(runPaths(dir).config, toYaml(resolvedConfig));
  } catch (err) {
    throw new RunDirError(`cannot write ${runPaths(dir).config}: ${fsReason(err)}`);
  }
}

/**
 * Reads metrics.jsonl. On resume, lines of epochs after `upToEpoch` (written after the checkpoint
 * that training resumes from) are dropped, so the file stays one line per epoch.
 */
export function readMetrics(dir: string, upToEpoch = Number.POSITIVE_INFINITY): EpochMetrics[] {
  let text: string;
  try {
    text = readFileSync(runPaths(dir).metrics, 'utf8');
  } catch {
    return [];
  }
  const rows: EpochMetrics[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const row = JSON.parse(line) as EpochMetrics;
      if (row.epoch <= upToEpoch) rows.push(row);
    } catch {
      // A torn last line from a crash mid-append: everything after it is redone on resume.
      break;
    }
  }
  return rows;
}

/** Rewrites metrics.jsonl with exactly `rows` (used when resuming). */
export function rewriteMetrics(dir: string, rows: readonly EpochMetrics[]): void {
  writeFileAtomic(runPaths(dir).metrics, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

/** Builds summary.json from the per-epoch metrics. */
export function summarise(
  rows: readonly EpochMetrics[],
  info: Pick<
    RunSummary,
    'name' | 'method' | 'seconds' | 'backend' | 'trainCounts' | 'confusion' | 'weightNorms'
  >,
): RunSummary {
  if (rows.length === 0) throw new Error('summarise: no epochs were run');
  const last = rows[rows.length - 1];
  const best = rows.reduce((b, r) => (r.testTop1 > b.testTop1 ? r : b), rows[0]);
  const pick = (r: EpochMetrics) => ({
    epoch: r.epoch,
    top1: r.testTop1,
    top1Error: 100 * (1 - r.testTop1),
    many: r.many,
    medium: r.medium,
    few: r.few,
  });
  return { ...info, epochs: last.epoch, last: pick(last), best: pick(best) };
}

/** Writes summary.json atomically. */
export function writeSummary(dir: string, summary: RunSummary): void {
  writeFileAtomic(runPaths(dir).summary, `${JSON.stringify(summary, null, 2)}\n`);
}

/** Copies the report's many/medium/few and per-class numbers into a metrics row's fields. */
export function shotFields(
  r: AccuracyReport,
): Pick<EpochMetrics, 'testTop1' | 'perClass' | 'many' | 'medium' | 'few'> {
  return { testTop1: r.top1, perClass: r.perClass, many: r.many, medium: r.medium, few: r.few };
}
