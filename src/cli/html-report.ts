/**
 * The HTML/PNG half of `bbn report`: `--html FILE` writes one self-contained HTML file (inline
 * SVG charts) and a PNG per chart beside it. `report-command.ts` calls {@link writeReportFiles}.
 */
import type { HtmlReportFiles } from '../report/index.ts';

/** Commander option text for `--html`. */
export const HTML_REPORT_OPTION = [
  '--html <file>',
  'also write an HTML report (inline SVG) and one PNG per chart beside it',
] as const;

/** Commander option text for `--no-png`. */
export const NO_PNG_OPTION = ['--no-png', 'with --html: skip the PNG files'] as const;

/**
 * Writes the HTML report of `dirs` to `htmlFile` (and PNGs unless `png` is false), then prints
 * where everything went and which charts were left out for lack of data.
 */
export async function writeReportFiles(
  dirs: readonly string[],
  htmlFile: string,
  opts: { png?: boolean; out?: NodeJS.WritableStream } = {},
): Promise<HtmlReportFiles> {
  const out = opts.out ?? process.stdout;
  // Imported here: vega and sharp load only when a report is written.
  const { writeHtmlReport } = await import('../report/index.ts');
  const files = await writeHtmlReport(dirs, htmlFile, { png: opts.png ?? true });
  out.write(`wrote ${files.html} (${files.charts.length} charts)\n`);
  if (files.pngs.length > 0) out.write(`wrote ${files.pngs.length} PNGs: ${files.pngs.join(', ')}\n`);
  for (const note of files.notes) out.write(`note: ${note}\n`);
  return files;
}
