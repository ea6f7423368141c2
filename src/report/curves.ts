/** Per-epoch curves of one or more runs: loss, accuracy, α and lr. */
import type { TopLevelSpec } from 'vega-lite';
import { CHART_CONFIG, CHART_SIZE, type Chart, pct, runColorScale } from './chart-api.ts';
import type { ReportRun } from './read-run.ts';

function lineSpec(
  title: string | { text: string; subtitle: string },
  values: Record<string, unknown>[],
  y: { field: string; title: string; format?: string },
  runLabels: readonly string[],
  opts: { dash?: { field: string; order: string[] }; colorTitle?: string; step?: boolean } = {},
): TopLevelSpec {
  const scale = runColorScale(
    values.map((v) => String(v.run)),
    runLabels,
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...CHART_SIZE,
    title,
    config: CHART_CONFIG,
    data: { values },
    // Schedules hold one value per epoch: a step line says so, a slope would invent values in
    // between. Centred on each epoch, so the last epoch's value is a step too, not a lone point.
    mark: { type: 'line', point: true, ...(opts.step ? { interpolate: 'step' as const } : {}) },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: y.field, type: 'quantitative', title: y.title, axis: y.format ? { format: y.format } : {} },
      color: { field: 'run', type: 'nominal', title: opts.colorTitle ?? 'run', scale, sort: scale.domain },
      // The dash legend of a line-with-points mark renders as blank symbols: the title says it instead.
      ...(opts.dash
        ? { strokeDash: { field: opts.dash.field, type: 'nominal', sort: opts.dash.order, legend: null } }
        : {}),
    },
  };
}

/**
 * Rows of a per-epoch series with runs whose series are identical merged under one label
 * (`a = b`), so one line does not hide another (schedules are often shared).
 */
function mergeIdentical<V>(
  runs: readonly ReportRun[],
  value: (row: ReportRun['rows'][number]) => V,
): { run: string; epoch: number; value: V }[] {
  const groups = new Map<string, { labels: string[]; run: ReportRun }>();
  for (const r of runs) {
    const key = JSON.stringify(r.rows.map((row) => [row.epoch, value(row)]));
    const g = groups.get(key);
    if (g) g.labels.push(r.label);
    else groups.set(key, { labels: [r.label], run: r });
  }
  return [...groups.values()].flatMap((g) =>
    g.run.rows.map((row) => ({ run: g.labels.join(' = '), epoch: row.epoch, value: value(row) })),
  );
}

/** Loss, accuracy, α and lr over epochs; α is left out (with a note) when no run has one. */
export function curveCharts(runs: readonly ReportRun[]): { charts: Chart[]; notes: string[] } {
  const charts: Chart[] = [];
  const notes: string[] = [];
  const rows = runs.flatMap((r) => r.rows.map((row) => ({ run: r.label, ...row })));
  const labels = runs.map((r) => r.label);
  charts.push({
    id: 'loss',
    title: 'Training loss',
    caption: 'Mean training loss per epoch (BBN: the α-weighted sum of both branches’ cross-entropy).',
    spec: lineSpec(
      'Training loss per epoch',
      rows.map((r) => ({ run: r.run, epoch: r.epoch, loss: r.trainLoss })),
      { field: 'loss', title: 'training loss (cross-entropy)' },
      labels,
    ),
  });
  charts.push({
    id: 'accuracy',
    title: 'Accuracy',
    caption: 'Training accuracy (dashed) and test top-1 accuracy (solid) per epoch, in percent.',
    spec: lineSpec(
      { text: 'Train and test top-1 accuracy per epoch', subtitle: 'solid: test top-1; dashed: train' },
      rows.flatMap((r) => [
        { run: r.run, epoch: r.epoch, split: 'test top-1', accuracy: pct(r.testTop1) },
        { run: r.run, epoch: r.epoch, split: 'train', accuracy: pct(r.trainAccuracy) },
      ]),
      { field: 'accuracy', title: 'accuracy (%)' },
      labels,
      { dash: { field: 'split', order: ['test top-1', 'train'] } }, // first in order: solid
    ),
  });
  const alphaRows = mergeIdentical(runs, (r) => r.alpha ?? null).filter((r) => r.value !== null);
  if (alphaRows.length > 0) {
    charts.push({
      id: 'alpha',
      title: 'Cumulative-learning α',
      caption:
        'α per epoch: the weight of the conventional branch (1 − α goes to the re-balancing branch). Runs with identical values share one line.',
      spec: lineSpec(
        'Cumulative-learning α per epoch',
        alphaRows.map((r) => ({ run: r.run, epoch: r.epoch, alpha: r.value })),
        { field: 'alpha', title: 'α (conventional-branch weight)' },
        labels,
        { step: true },
      ),
    });
  } else {
    notes.push('α chart omitted: no run has an α (single-branch methods have none).');
  }
  charts.push({
    id: 'lr',
    title: 'Learning rate',
    caption:
      'Learning rate per epoch (after warm-up and decay). Runs with identical schedules share one line.',
    spec: lineSpec(
      'Learning rate per epoch',
      mergeIdentical(runs, (r) => r.lr).map((r) => ({ run: r.run, epoch: r.epoch, lr: r.value })),
      { field: 'lr', title: 'learning rate' },
      labels,
      { step: true },
    ),
  });
  return { charts, notes };
}
