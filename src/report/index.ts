/**
 * `report`: the HTML + PNG report of finished runs (curves, per-class head-to-tail accuracy,
 * many/medium/few, confusion, classifier weight norms), rendered headlessly with Vega-Lite.
 */
export type { Chart, ChartPlan } from './chart-api.ts';
export { headToTail } from './classes.ts';
export {
  type HtmlReportFiles,
  type HtmlReportOptions,
  planReport,
  renderPage,
  writeHtmlReport,
} from './html.ts';
export {
  type ReportEpochRow,
  ReportInputError,
  type ReportNormStats,
  type ReportRun,
  type ReportSummary,
  readReportRun,
  readReportRuns,
} from './read-run.ts';
export { renderSvg, svgToPng } from './render.ts';
