/**
 * Reads a finished run directory for the HTML report: `metrics.jsonl` (one row per epoch) and
 * `summary.json`, with the optional fields the plots need (`trainCounts`, `confusion`,
 * `weightNorms`). The shapes are declared here structurally (the report imports core only); they
 * match `EpochMetrics` / `RunSummary` of src/worker/run-dir.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

/** The report's error: names the file and what is wrong with it. */
export class ReportInputError extends Error {
  readonly userFacing = true;
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'ReportInputError';
  }
}

/** One metrics.jsonl row (the fields the report reads). */
export interface ReportEpochRow {
  readonly epoch: number;
  readonly alpha: number | null;
  readonly lr: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly testTop1: number;
  readonly perClass: readonly (number | null)[];
  readonly many: number | null;
  readonly medium: number | null;
  readonly few: number | null;
}

/** Per-class norms and their spread (src/model/norms.ts `NormStats`, with the norms as a plain array). */
export interface ReportNormStats {
  readonly norms: readonly number[];
  readonly mean: number;
  readonly std: number;
}

/** summary.json (the fields the report reads), including the optional plot inputs. */
export interface ReportSummary {
  readonly name?: string;
  readonly method?: string;
  readonly epochs?: number;
  readonly last?: {
    epoch: number;
    top1: number;
    many: number | null;
    medium: number | null;
    few: number | null;
  };
  readonly best?: {
    epoch: number;
    top1: number;
    many: number | null;
    medium: number | null;
    few: number | null;
  };
  /** Training images per class, in class id order. */
  readonly trainCounts?: readonly number[];
  /** Confusion counts `[trueClass][predictedClass]` on the test set at the last epoch. */
  readonly confusion?: readonly (readonly number[])[];
  /** Classifier weight norms per class (`classifierNorms` of src/model/norms.ts, arrays as JSON lists). */
  readonly weightNorms?: { all: ReportNormStats; cb?: ReportNormStats; rb?: ReportNormStats };
}

/** A run as the report sees it. */
export interface ReportRun {
  /** Unique display name among the runs of one report. */
  readonly label: string;
  readonly dir: string;
  readonly rows: readonly ReportEpochRow[];
  readonly summary: ReportSummary;
}

function readJsonl(file: string): ReportEpochRow[] {
  const rows: ReportEpochRow[] = [];
  const lines = readFileSync(file, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    try {
      rows.push(JSON.parse(lines[i]) as ReportEpochRow);
    } catch {
      // A torn last line (crash mid-append) ends the file; a torn middle line is an error.
      if (lines.slice(i + 1).some((l) => l.trim() !== '')) {
        throw new ReportInputError(file, `line ${i + 1} is not JSON`);
      }
    }
  }
  return rows;
}

/** Reads one run directory; throws {@link ReportInputError} when it has no metrics rows. */
export function readReportRun(dir: string): ReportRun {
  const metrics = join(dir, 'metrics.jsonl');
  if (!existsSync(metrics))
    throw new ReportInputError(metrics, 'missing: not a run directory written by bbn train');
  const rows = readJsonl(metrics);
  if (rows.length === 0) throw new ReportInputError(metrics, 'has no epoch rows');
  const summaryFile = join(dir, 'summary.json');
  let summary: ReportSummary = {};
  if (existsSync(summaryFile)) {
    try {
      summary = JSON.parse(readFileSync(summaryFile, 'utf8')) as ReportSummary;
    } catch (err) {
      throw new ReportInputError(summaryFile, `not JSON: ${(err as Error).message}`);
    }
  }
  const label = summary.name ?? summary.method ?? basename(resolve(dir));
  return { label, dir, rows, summary };
}

/** Reads several runs and makes their labels unique (appending the directory name on a clash). */
export function readReportRuns(dirs: readonly string[]): ReportRun[] {
  const runs = dirs.map(readReportRun);
  const seen = new Map<string, number>();
  for (const r of runs) seen.set(r.label, (seen.get(r.label) ?? 0) + 1);
  return runs.map((r, i) => {
    if ((seen.get(r.label) ?? 0) < 2) return r;
    return { ...r, label: `${r.label} (${basename(resolve(dirs[i])) || i})` };
  });
}
