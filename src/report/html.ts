/**
 * The HTML report of one or more runs: one self-contained file (inline SVG charts, inline CSS, no
 * scripts, no network) plus a PNG of every chart beside it. Charts whose data is absent are listed
 * as notes, never drawn from made-up numbers.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import type { Chart } from './chart-api.ts';
import { classCharts } from './classes.ts';
import { type ConfigDifference, configDifferences, differenceWarning } from './config-diff.ts';
import { curveCharts } from './curves.ts';
import { type ReportRun, readReportRuns } from './read-run.ts';
import { renderSvg, svgToPng } from './render.ts';

/** Options of {@link writeHtmlReport}. */
export interface HtmlReportOptions {
  /** Write a PNG of each chart (default true). */
  png?: boolean;
  /** PNG pixels per CSS pixel (default 2). */
  pngScale?: number;
  /** Page title (default: the run labels). */
  title?: string;
}

/** What {@link writeHtmlReport} wrote. */
export interface HtmlReportFiles {
  /** Path of the HTML file. */
  readonly html: string;
  /** Paths of the PNGs, one per chart, in page order. */
  readonly pngs: string[];
  /** Ids of the charts drawn, in page order. */
  readonly charts: string[];
  /** Why charts were left out. */
  readonly notes: string[];
  /** What a reader must know before comparing the runs (settings that differ beyond the method). */
  readonly warnings: string[];
}

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const pctCell = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : (100 * x).toFixed(2);

function summaryTable(runs: readonly ReportRun[]): string {
  const head = ['run', 'epochs', 'last top-1 %', 'best top-1 % (epoch)', 'many %', 'medium %', 'few %'];
  const rows = runs.map((r) => {
    const lastRow = r.rows.at(-1)!;
    const last = r.summary.last ?? {
      top1: lastRow.testTop1,
      many: lastRow.many,
      medium: lastRow.medium,
      few: lastRow.few,
    };
    const best = r.summary.best;
    return [
      esc(r.label),
      r.finished
        ? String(lastRow.epoch)
        : `${lastRow.epoch}${r.totalEpochs === null ? '' : `/${r.totalEpochs}`} (unfinished)`,
      pctCell(last.top1),
      best ? `${pctCell(best.top1)} (${best.epoch})` : '–',
      pctCell(last.many),
      pctCell(last.medium),
      pctCell(last.few),
    ];
  });
  return [
    '<table>',
    `<thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>`,
    `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody>`,
    '</table>',
  ].join('\n');
}

/** The settings that differ between the runs, one row per setting, one column per run. */
function differencesTable(runs: readonly ReportRun[], diffs: readonly ConfigDifference[]): string {
  if (diffs.length === 0) return '';
  const withConfig = runs.filter((r) => r.config !== null);
  const head = ['setting', ...withConfig.map((r) => esc(r.label))];
  const rows = diffs.map((d) => [`<code>${esc(d.key)}</code>`, ...d.values.map((v) => esc(v ?? '–'))]);
  return [
    '<section class="differences"><h2>Settings that differ</h2>',
    '<table>',
    `<thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>`,
    `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody>`,
    '</table></section>',
  ].join('\n');
}

/** The charts of a report, in page order, and notes about the ones left out. */
export function planReport(runs: readonly ReportRun[]): { charts: Chart[]; notes: string[] } {
  const curves = curveCharts(runs);
  const classes = classCharts(runs);
  return { charts: [...curves.charts, ...classes.charts], notes: [...curves.notes, ...classes.notes] };
}

/** Builds the page from rendered charts. */
export function renderPage(
  title: string,
  runs: readonly ReportRun[],
  charts: readonly { chart: Chart; svg: string }[],
  notes: readonly string[],
  diffs: readonly ConfigDifference[] = [],
  warnings: readonly string[] = [],
): string {
  // The chart's own title is drawn in its SVG: the figure does not repeat it.
  const figures = charts
    .map(
      ({ chart, svg }) =>
        `<figure id="${chart.id}"${chart.wide ? ' class="wide"' : ''} aria-label="${esc(chart.title)}">\n${svg}\n<figcaption>${esc(chart.caption)}</figcaption>\n</figure>`,
    )
    .join('\n');
  const warningList = warnings.map((w) => `<p class="warning">Warning: ${esc(w)}</p>`).join('\n');
  const noteList = notes.length
    ? `<section class="notes"><h2>Not shown</h2><ul>${notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul></section>`
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<style>
body { font-family: 'DejaVu Sans', Verdana, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
main { display: flex; flex-wrap: wrap; gap: 24px; }
figure { margin: 0; }
figure.wide { flex-basis: 100%; }
.warning { background: #fff4e5; border-left: 4px solid #f58518; padding: 6px 10px; }
figcaption { font-size: 0.85em; color: #555; max-width: 560px; }
.notes { margin-top: 2em; font-size: 0.9em; color: #555; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
<p>Runs: ${runs.map((r) => `<code>${esc(r.label)}</code> (${esc(r.dir)})`).join(', ')}</p>
${warningList}
${summaryTable(runs)}
${differencesTable(runs, diffs)}
<main>
${figures}
</main>
${noteList}
</body>
</html>
`;
}

/**
 * Reads the run directories, renders every chart headlessly, writes `outFile` (HTML) and, unless
 * `png: false`, `<outFile stem>-<chart id>.png` beside it.
 */
export async function writeHtmlReport(
  runDirs: readonly string[],
  outFile: string,
  opts: HtmlReportOptions = {},
): Promise<HtmlReportFiles> {
  const runs = readReportRuns(runDirs);
  const { charts, notes } = planReport(runs);
  const rendered: { chart: Chart; svg: string }[] = [];
  for (const chart of charts) rendered.push({ chart, svg: await renderSvg(chart.spec) });
  const title = opts.title ?? `BBN report: ${runs.map((r) => r.label).join(' vs ')}`;
  const diffs = configDifferences(runs.map((r) => r.config));
  const warning = differenceWarning(diffs);
  const warnings = warning ? [warning] : [];
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, renderPage(title, runs, rendered, notes, diffs, warnings));
  const pngs: string[] = [];
  if (opts.png ?? true) {
    const stem = join(dirname(outFile), basename(outFile, extname(outFile)));
    for (const { chart, svg } of rendered) {
      const path = `${stem}-${chart.id}.png`;
      writeFileSync(path, await svgToPng(svg, opts.pngScale));
      pngs.push(path);
    }
  }
  return { html: outFile, pngs, charts: charts.map((c) => c.id), notes, warnings };
}
