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
