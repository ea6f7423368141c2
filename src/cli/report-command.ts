/**
 * `bbn report DIR [DIR …]`: the per-class and many/medium/few tables of runs, side by side, with
 * one sentence per split saying which run wins. Each run is labelled as in the HTML report (its
 * directory and method); an unfinished or stopped run is reported from the epochs it trained; runs
 * whose configs differ beyond the method are named in a warning.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../core/config.ts';
import { configDifferences, differenceWarning } from '../report/config-diff.ts';
import { readReportRuns } from '../report/read-run.ts';
import { type EpochMetrics, type RunSummary, readMetrics, runPaths, summarise } from '../worker/run-dir.ts';
import { fsReason } from '../worker/run-dir-error.ts';
import { HTML_REPORT_OPTION, NO_PNG_OPTION, writeReportFiles } from './html-report.ts';

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || Number.isNaN(x) ? '-' : (100 * x).toFixed(2);

/** The overall / many / medium / few table (top-1 accuracy in %, last and best epoch). */
export function formatShotTable(runs: readonly { label: string; summary: RunSummary }[]): string {
  const header = ['run', 'epoch', 'top-1 %', 'error %', 'many %', 'medium %', 'few %'];
  const rows: string[][] = [];
  for (const { label, summary } of runs) {
    for (const [which, e] of [
      ['last', summary.last],
      ['best', summary.best],
    ] as const) {
      rows.push([
        `${label} ${which}`,
        String(e.epoch),
        pct(e.top1),
        e.top1Error.toFixed(2),
        pct(e.many),
        pct(e.medium),
        pct(e.few),
      ]);
    }
  }
  return formatTable(header, rows);
}

/** Aligns a table: first column left, the others right. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A run read back from its directory. */
export interface RunRecord {
  readonly dir: string;
  readonly summary: RunSummary;
  readonly last: EpochMetrics;
  readonly trainCounts?: number[];
  /** How the report names it (default: its method). */
  readonly label?: string;
  /** False when the run has no summary.json yet: its numbers are its last trained epoch's. */
  readonly finished?: boolean;
}

/**
 * Reads summary.json and the last metrics row of a run directory; a run without a summary (still
 * training, or stopped) is read from its metrics rows; a clear error if it is not a run.
 */
export function readRun(dir: string): RunRecord {
  const p = runPaths(dir);
  if (!existsSync(p.summary)) {
    const rows = readMetrics(dir);
    if (rows.length === 0) {
      throw new ConfigError(
        `${dir} has no summary.json and no metrics rows: not a run directory made by bbn train, or one that has not finished an epoch`,
      );
    }
    const cfg = readRunDirConfig(dir);
    const summary = summarise(rows, {
      name: cfg.name ?? '',
      method: cfg.method ?? '',
      seconds: rows.reduce((s, r) => s + r.seconds, 0),
      backend: '',
    });
    const last = rows[rows.length - 1];
    return { dir, summary, last, finished: false };
  }
  let summary: RunSummary;
  try {
    summary = JSON.parse(readFileSync(p.summary, 'utf8')) as RunSummary;
  } catch (err) {
    const why =
      err instanceof SyntaxError ? 'is not JSON (empty or torn)' : `cannot be read: ${fsReason(err)}`;
    throw new ConfigError(`${p.summary} ${why}; bbn train --resume ${dir} writes it again at the run's end`);
  }
  if (typeof summary?.last?.top1Error !== 'number' || typeof summary.best?.top1Error !== 'number') {
    throw new ConfigError(`${p.summary} is not a run summary (no last/best top-1 error)`);
  }
  const rows = readMetrics(dir);
  if (rows.length === 0) throw new ConfigError(`${dir} has no metrics.jsonl rows`);
  return { dir, summary, last: rows[rows.length - 1], finished: true };
}

/** The name and method in a run directory's config.yaml (empty when unreadable). */
function readRunDirConfig(dir: string): { name?: string; method?: string } {
  try {
    const cfg = parseYaml(readFileSync(runPaths(dir).config, 'utf8')) as { name?: unknown; method?: unknown };
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    return { name: str(cfg?.name), method: str(cfg?.method) };
  } catch {
    return {};
  }
}

/**
 * A warning when the run diverged: epochs whose training loss is not finite (NaN and Infinity are
 * written as null in JSON), or a summary whose classifier norms are not finite.
 */
export function divergenceNote(dir: string): string | undefined {
  const rows = readMetrics(dir);
  const bad = rows.filter((r) => !Number.isFinite(r.trainLoss)).map((r) => r.epoch);
  if (bad.length > 0) {
    return `${dir}: the run diverged: the training loss is not finite in epoch${bad.length > 1 ? 's' : ''} ${bad.join(', ')}; its weights are not usable`;
  }
  return undefined;
}

/** The full report text of one or more runs. */
export function formatReport(runs: readonly RunRecord[]): string {
  const out: string[] = [];
  const label = (r: RunRecord) => r.label ?? r.summary.method;
  out.push(formatShotTable(runs.map((r) => ({ label: label(r), summary: r.summary }))));
  for (const r of runs) {
    if (r.finished === false) {
      out.push(
        `note: ${label(r)} is unfinished (trained ${r.last.epoch} epoch(s)): its "last" is that epoch`,
      );
    }
  }
  const classes = runs[0].last.perClass.length;
  const header = ['class', ...runs.map((r) => `${label(r)} %`)];
  const rows = Array.from({ length: classes }, (_, c) => [
    String(c),
    ...runs.map((r) => pct(r.last.perClass[c])),
  ]);
  out.push(
    '',
    'per-class top-1 at the last epoch (classes in id order: head first for the long-tail profiles)',
  );
  out.push(formatTable(header, rows));
  if (runs.length > 1) {
    out.push('');
    for (const split of ['top1', 'many', 'medium', 'few'] as const) {
      const value = (r: RunRecord) => (split === 'top1' ? r.summary.last.top1 : r.summary.last[split]);
      const ranked = runs.filter((r) => value(r) !== null).sort((a, b) => (value(b) ?? 0) - (value(a) ?? 0));
      if (ranked.length < 2) continue;
      const [a, b] = ranked;
      out.push(
        `${split === 'top1' ? 'overall' : split}: ${label(a)} wins with ${pct(value(a))}% ` +
          `(next: ${label(b)} ${pct(value(b))}%, +${(100 * ((value(a) ?? 0) - (value(b) ?? 0))).toFixed(2)} points)`,
      );
    }
  }
  return out.join('\n');
}

/** Registers `bbn report`. */
export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description('print per-class and many/medium/few tables of runs (finished or not), side by side')
    .argument('<dirs...>', 'run directories written by bbn train')
    .option(...HTML_REPORT_OPTION)
    .option(...NO_PNG_OPTION)
    .action(async (dirs: string[], o: { html?: string; png: boolean }) => {
      // Read first for the errors people know (summary, metrics); then the report's labels and configs.
      const records = dirs.map(readRun);
      const labelled = readReportRuns(dirs);
      const runs = records.map((r, i) => ({ ...r, label: labelled[i].label }));
      const warning = differenceWarning(configDifferences(labelled.map((r) => r.config)));
      if (warning) process.stderr.write(`bbn: warning: ${warning}\n`);
      for (const d of dirs) {
        const note = divergenceNote(d);
        if (note) process.stderr.write(`bbn: warning: ${note}\n`);
      }
      process.stdout.write(`${formatReport(runs)}\n`);
      if (o.html) await writeReportFiles(dirs, o.html, { png: o.png });
    });
}
