/**
 * `bbn report DIR [DIR …]`: the per-class and many/medium/few tables of finished runs, side by
 * side, with one sentence per split saying which run wins.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError } from '../core/config.ts';
import { type EpochMetrics, type RunSummary, readMetrics, runPaths } from '../worker/run-dir.ts';
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

/** A finished run read back from its directory. */
export interface RunRecord {
  readonly dir: string;
  readonly summary: RunSummary;
  readonly last: EpochMetrics;
  readonly trainCounts?: number[];
}

/** Reads summary.json and the last metrics row of a run directory; a clear error if it is not one. */
export function readRun(dir: string): RunRecord {
  const p = runPaths(dir);
  if (!existsSync(p.summary)) {
    throw new ConfigError(
      `${dir} has no summary.json: not a finished run directory (still training, or stopped?)`,
    );
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
  return { dir, summary, last: rows[rows.length - 1] };
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
  out.push(formatShotTable(runs.map((r) => ({ label: r.summary.method, summary: r.summary }))));
  const classes = runs[0].last.perClass.length;
  const header = ['class', ...runs.map((r) => `${r.summary.method} %`)];
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
        `${split === 'top1' ? 'overall' : split}: ${a.summary.method} wins with ${pct(value(a))}% ` +
          `(next: ${b.summary.method} ${pct(value(b))}%, +${(100 * ((value(a) ?? 0) - (value(b) ?? 0))).toFixed(2)} points)`,
      );
    }
  }
  return out.join('\n');
}

/** Registers `bbn report`. */
export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description('print per-class and many/medium/few tables of finished runs, side by side')
    .argument('<dirs...>', 'run directories written by bbn train')
    .option(...HTML_REPORT_OPTION)
    .option(...NO_PNG_OPTION)
    .action(async (dirs: string[], o: { html?: string; png: boolean }) => {
      const runs = dirs.map(readRun);
      for (const d of dirs) {
        const note = divergenceNote(d);
        if (note) process.stderr.write(`bbn: warning: ${note}\n`);
      }
      process.stdout.write(`${formatReport(runs)}\n`);
      if (o.html) await writeReportFiles(dirs, o.html, { png: o.png });
    });
}
