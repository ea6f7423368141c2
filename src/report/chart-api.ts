/** What the chart builders return: a Vega-Lite spec with an id and a title, or a note why it is absent. */
import type { TopLevelSpec } from 'vega-lite';

/** One chart of the report. */
export interface Chart {
  /** File-name-safe id, unique within a report (used for the PNG name). */
  readonly id: string;
  readonly title: string;
  /** One sentence under the chart: what it shows and how to read it. */
  readonly caption: string;
  readonly spec: TopLevelSpec;
  /** Spans the page's width (the confusion matrices). */
  readonly wide?: boolean;
}

/** Charts to draw and notes about the ones left out (their data is absent: never faked). */
export interface ChartPlan {
  readonly charts: Chart[];
  readonly notes: string[];
}

/** Shared look: one font family that librsvg finds through fontconfig, readable sizes, white background. */
export const CHART_CONFIG = {
  font: 'DejaVu Sans, Verdana, sans-serif',
  background: 'white',
  padding: 8,
  axis: { labelFontSize: 11, titleFontSize: 12, grid: true },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 320 },
  title: { fontSize: 14, anchor: 'start' as const, subtitleFontSize: 11 },
  view: { stroke: '#ddd' },
};

/** Run colours (Tableau 10), given to the runs in command-line order. */
export const RUN_PALETTE = [
  '#4c78a8',
  '#f58518',
  '#54a24b',
  '#e45756',
  '#72b7b2',
  '#eeca3b',
  '#b279a2',
  '#ff9da6',
  '#9d755d',
  '#bab0ac',
] as const;

/**
 * The colour scale of a chart's run series, so a run has the same colour in every chart: `series`
 * are the labels the chart draws (a run's label, or runs with identical values joined by ` = `,
 * which take their first run's colour), `runLabels` every run in command-line order.
 */
export function runColorScale(
  series: readonly string[],
  runLabels: readonly string[],
): { domain: string[]; range: string[] } {
  const domain = [...new Set(series)];
  const colour = (s: string) => {
    const first = runLabels.findIndex((l) => s === l || s.startsWith(`${l} = `));
    return RUN_PALETTE[Math.max(0, first) % RUN_PALETTE.length];
  };
  const order = (s: string) => runLabels.findIndex((l) => s === l || s.startsWith(`${l} = `));
  domain.sort((a, b) => order(a) - order(b));
  return { domain, range: domain.map(colour) };
}

/** Chart width and height in CSS pixels. */
export const CHART_SIZE = { width: 520, height: 260 } as const;

/** An id-safe form of a run label. */
export function slug(s: string): string {
  return (
    s
      .replace(/[^A-Za-z0-9]+/g, '-')
      .replace(/^-|-$/g, '')
      .toLowerCase() || 'run'
  );
}

/** Fraction → percent, keeping null / NaN as null (Vega-Lite leaves a gap). */
export function pct(x: number | null | undefined): number | null {
  return x === null || x === undefined || !Number.isFinite(x) ? null : 100 * x;
}
