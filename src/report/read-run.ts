/**
 * Reads a run directory for the HTML report: `metrics.jsonl` (one row per epoch), `config.yaml`
 * and, once the run finished, `summary.json` with the optional fields the plots need
 * (`trainCounts`, `confusion`, `weightNorms`). An unfinished or stopped run is reported from its
 * rows. The shapes are declared here structurally (the report imports core only); they match
 * `EpochMetrics` / `RunSummary` of src/worker/run-dir.ts.
 *
 * One label names a run everywhere (tables, legends, chart titles): its directory and its method,
 * `c10-ir100 (bbn)`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

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
  /** Unique display name among the runs of one report: `<directory> (<method>)`. */
  readonly label: string;
  /** Unique base of the run's chart ids (its directory name). */
  readonly key: string;
  /** BBN or the baseline's method, from summary.json or config.yaml. */
  readonly method: string | undefined;
  readonly dir: string;
  readonly rows: readonly ReportEpochRow[];
  readonly summary: ReportSummary;
  /** The parsed config.yaml, or null when the directory has none. */
  readonly config: Record<string, unknown> | null;
  /** Epochs the config asks for (null when unknown). */
  readonly totalEpochs: number | null;
  /** False while the run has not trained all its epochs and written its summary. */
  readonly finished: boolean;
}

/** The label of a run: its directory and its method. */
export function runLabel(name: string, method: string | undefined): string {
  return method ? `${name} (${method})` : name;
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
  let config: Record<string, unknown> | null = null;
  const configFile = join(dir, 'config.yaml');
  if (existsSync(configFile)) {
    try {
      config = (parseYaml(readFileSync(configFile, 'utf8')) ?? null) as Record<string, unknown> | null;
    } catch (err) {
      throw new ReportInputError(configFile, `not YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  const method = summary.method ?? (typeof config?.method === 'string' ? config.method : undefined);
  const train = config?.train as { epochs?: unknown } | undefined;
  const totalEpochs = typeof train?.epochs === 'number' ? train.epochs : (summary.epochs ?? null);
  const finished = existsSync(summaryFile) && (totalEpochs === null || rows.at(-1)!.epoch >= totalEpochs);
  const key = basename(resolve(dir));
  return { label: runLabel(key, method), key, method, dir, rows, summary, config, totalEpochs, finished };
}

/** Reads several runs, in command-line order; directories of the same name are told apart by their parent. */
export function readReportRuns(dirs: readonly string[]): ReportRun[] {
  const runs = dirs.map(readReportRun);
  const seen = new Map<string, number>();
  for (const r of runs) seen.set(r.key, (seen.get(r.key) ?? 0) + 1);
  return runs.map((r, i) => {
    if ((seen.get(r.key) ?? 0) < 2) return r;
    const key = `${basename(dirname(resolve(dirs[i])))}/${r.key}#${i + 1}`;
    return { ...r, key, label: runLabel(key, r.method) };
  });
}
