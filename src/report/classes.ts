/**
 * Per-class views, head to tail: per-class accuracy, many/medium/few bars, the confusion matrix and
 * the classifier weight norms (BBN paper Fig. 4). Classes are ordered by training images, most
 * first, when `trainCounts` is known; otherwise by class id, which the note says.
 */
import type { TopLevelSpec } from 'vega-lite';
import { CHART_CONFIG, CHART_SIZE, type Chart, pct, runColorScale, slug } from './chart-api.ts';
import type { ReportNormStats, ReportRun } from './read-run.ts';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/** Class ids from head (most training images) to tail; ties keep id order. */
export function headToTail(numClasses: number, trainCounts: readonly number[] | undefined): number[] {
  const ids = Array.from({ length: numClasses }, (_, c) => c);
  if (!trainCounts || trainCounts.length !== numClasses) return ids;
  return ids.sort((a, b) => trainCounts[b] - trainCounts[a] || a - b);
}

/** Axis label of a class: its id, and its training images when known. */
function classLabel(c: number, counts: readonly number[] | undefined): string {
  return counts && counts.length > c ? `${c} (n=${counts[c]})` : String(c);
}

function classAxis(labels: string[], counted: boolean) {
  return {
    field: 'class',
    type: 'ordinal' as const,
    sort: labels,
    title: counted ? 'class id (training images), head → tail' : 'class id',
    // Every class labelled up to 30 classes (angled past 6); beyond that, Vega thins the labels.
    axis: {
      labelAngle: labels.length > 6 ? -45 : 0,
      labelOverlap: labels.length > 30,
      grid: labels.length <= 30,
    },
  };
}

/** The run colour encoding: every run its own colour, the same in every chart, in command-line order. */
function runColor(runs: readonly ReportRun[]) {
  const labels = runs.map((r) => r.label);
  const scale = runColorScale(labels, labels);
  return { field: 'run', type: 'nominal' as const, title: 'run', scale, sort: scale.domain };
}

/** Plot width of a chart that spans the page (the confusion matrices): with its axes and legend, the page's 1200 px. */
export const WIDE_WIDTH = 900;

function perClassChart(runs: readonly ReportRun[], notes: string[]): Chart | undefined {
  const numClasses = runs[0].rows.at(-1)?.perClass.length ?? 0;
  if (numClasses === 0) {
    notes.push('Per-class accuracy omitted: metrics.jsonl rows have no perClass values.');
    return undefined;
  }
  const counts = runs.find((r) => r.summary.trainCounts?.length === numClasses)?.summary.trainCounts;
  if (!counts) notes.push('Per-class accuracy is in class id order: summary.json has no trainCounts.');
  const order = headToTail(numClasses, counts);
  const labels = order.map((c) => classLabel(c, counts));
  const values = runs.flatMap((r) => {
    const last = r.rows.at(-1)!;
    return order.map((c, rank) => ({ run: r.label, class: labels[rank], accuracy: pct(last.perClass[c]) }));
  });
  const bars = numClasses <= 30;
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    ...CHART_SIZE,
    title: {
      text: 'Per-class test accuracy, last epoch',
      subtitle: counts ? 'head (left) → tail (right)' : '',
    },
    config: CHART_CONFIG,
    data: { values },
    mark: bars ? { type: 'bar' } : { type: 'line', point: { size: 12 } },
    encoding: {
      x: classAxis(labels, counts !== undefined),
      y: {
        field: 'accuracy',
        type: 'quantitative',
        title: 'top-1 accuracy (%)',
        scale: { domain: [0, 100] },
      },
      color: runColor(runs),
      ...(bars && runs.length > 1 ? { xOffset: { field: 'run', type: 'nominal' } } : {}),
    },
  };
  return {
    id: 'per-class',
    title: 'Per-class accuracy',
    caption: 'Test accuracy of each class at the last epoch, classes ordered from head to tail.',
    spec,
  };
}

function shotChart(runs: readonly ReportRun[], notes: string[]): Chart | undefined {
  const groups = ['overall', 'many', 'medium', 'few'] as const;
  const values = runs.flatMap((r) => {
    const last = r.summary.last ?? { ...r.rows.at(-1)!, top1: r.rows.at(-1)!.testTop1 };
    return groups
      .map((g) => ({ run: r.label, group: g, accuracy: pct(g === 'overall' ? last.top1 : last[g]) }))
      .filter((v) => v.accuracy !== null);
  });
  if (!values.some((v) => v.group !== 'overall')) {
    notes.push('Many/medium/few bars omitted: no run reports shot-group accuracy.');
    return undefined;
  }
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    ...CHART_SIZE,
    title: 'Top-1 accuracy by shot group, last epoch',
    config: CHART_CONFIG,
    data: { values },
    layer: [
      { mark: { type: 'bar' } },
      {
        mark: { type: 'text', dy: -6, fontSize: 10 },
        encoding: { text: { field: 'accuracy', type: 'quantitative', format: '.1f' } },
      },
    ],
    encoding: {
      x: {
        field: 'group',
        type: 'nominal',
        sort: [...groups],
        title: 'class group (by training images)',
        axis: { labelAngle: 0 },
      },
      y: {
        field: 'accuracy',
        type: 'quantitative',
        title: 'top-1 accuracy (%)',
        scale: { domain: [0, 100] },
      },
      color: runColor(runs),
      xOffset: { field: 'run', type: 'nominal', sort: runs.map((r) => r.label) },
    },
  };
  return {
    id: 'shots',
    title: 'Many / medium / few',
    caption: 'Mean per-class accuracy of many-shot (>100 images), medium and few-shot (<20) classes.',
    spec,
  };
}

function confusionChart(run: ReportRun): Chart {
  const m = run.summary.confusion!;
  const counts = run.summary.trainCounts?.length === m.length ? run.summary.trainCounts : undefined;
  const order = headToTail(m.length, counts);
  const labels = order.map((c) => classLabel(c, counts));
  const values: { truth: string; predicted: string; share: number; count: number }[] = [];
  for (const [ti, t] of order.entries()) {
    const total = m[t].reduce((a, b) => a + b, 0);
    for (const [pi, p] of order.entries()) {
      values.push({
        truth: labels[ti],
        predicted: labels[pi],
        count: m[t][p],
        share: total > 0 ? m[t][p] / total : 0,
      });
    }
  }
  // The page's full width; rows as tall as the columns are wide, up to a square page.
  const height = Math.min(WIDE_WIDTH, Math.max(260, 24 * m.length));
  const axis = (field: 'truth' | 'predicted', title: string) => ({
    field,
    type: 'ordinal' as const,
    sort: labels,
    // Every class keeps its row and column, even one never predicted (whose cells are all blank).
    scale: { domain: labels },
    title,
    axis: {
      labelAngle: field === 'predicted' && m.length > 6 ? -45 : 0,
      labelOverlap: m.length > 30,
      labelLimit: 140, // long class names are cut with an ellipsis, never drawn over the cells
      grid: false, // grid lines would cross the cells and their numbers
    },
  });
  // Zero cells stay blank: no colour and no "0%", so the errors that exist stand out.
  const cellText = {
    transform: [{ filter: 'datum.count > 0' }],
    mark: { type: 'text' as const, fontSize: 9 },
    encoding: {
      text: { field: 'share', type: 'quantitative' as const, format: '.0%' },
      color: { condition: { test: 'datum.share > 0.5', value: 'white' }, value: 'black' },
    },
  };
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    width: WIDE_WIDTH,
    height,
    title: {
      text: `Confusion matrix, last epoch: ${run.label}`,
      subtitle: 'rows: true class; each row sums to 100%',
    },
    config: CHART_CONFIG,
    data: { values },
    encoding: { x: axis('predicted', 'predicted class'), y: axis('truth', 'true class') },
    layer: [
      {
        transform: [{ filter: 'datum.count > 0' }],
        mark: { type: 'rect' },
        encoding: {
          color: {
            field: 'share',
            type: 'quantitative',
            title: 'row share',
            scale: { scheme: 'blues', domain: [0, 1] },
            legend: { format: '.0%' },
          },
        },
      },
      // Numbers in the cells only while they stay legible.
      ...(m.length <= 12 ? [cellText] : []),
    ],
  };
  return {
    wide: true,
    id: `confusion-${slug(run.key)}`,
    title: `Confusion matrix (${run.label})`,
    caption:
      'Row-normalised confusion on the test set; off-diagonal mass left of the diagonal is tail classes predicted as head classes.',
    spec,
  };
}

/** One y range for every run's weight-norm chart, so their levels compare at a glance. */
function normsDomain(runs: readonly ReportRun[]): [number, number] | undefined {
  const all = runs.flatMap((r) => {
    const wn = r.summary.weightNorms;
    return wn ? [wn.all, wn.cb, wn.rb].flatMap((s) => (s ? [...s.norms] : [])) : [];
  });
  const finite = all.filter(Number.isFinite);
  if (finite.length === 0) return undefined;
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 1;
  return [lo - pad, hi + pad];
}

function normsChart(run: ReportRun, domain: [number, number] | undefined): Chart {
  const wn = run.summary.weightNorms!;
  const numClasses = wn.all.norms.length;
  const counts = run.summary.trainCounts?.length === numClasses ? run.summary.trainCounts : undefined;
  const order = headToTail(numClasses, counts);
  const labels = order.map((c) => classLabel(c, counts));
  const series: [string, ReportNormStats | undefined][] = [
    ['W_c conventional half', wn.cb],
    ['W_r re-balancing half', wn.rb],
    ['W combined', wn.all],
  ];
  const present = series.filter((s): s is [string, ReportNormStats] => s[1] !== undefined);
  const name = (n: string, s: ReportNormStats) => `${n} (mean ${s.mean.toFixed(3)}, σ ${s.std.toFixed(3)})`;
  const values = present.flatMap(([n, s]) =>
    order.map((c, i) => ({ class: labels[i], weights: name(n, s), norm: s.norms[c] })),
  );
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    ...CHART_SIZE,
    title: {
      text: `Classifier weight norms per class: ${run.label}`,
      subtitle: 'as BBN paper Fig. 4; σ over classes',
    },
    config: CHART_CONFIG,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: classAxis(labels, counts !== undefined),
      y: {
        field: 'norm',
        type: 'quantitative',
        title: 'L2 norm of the class weight vector',
        ...(domain ? { scale: { domain, zero: false } } : {}),
      },
      color: {
        field: 'weights',
        type: 'nominal',
        title: 'classifier weights',
        sort: present.map(([n, s]) => name(n, s)),
        legend: { orient: 'bottom', direction: 'vertical', labelLimit: 600 },
      },
    },
  };
  return {
    id: `weight-norms-${slug(run.key)}`,
    title: `Classifier weight norms (${run.label})`,
    caption:
      'L2 norm of each class’s classifier weights: a flat line means the classifier is not biased toward head classes.',
    spec,
  };
}

/** Per-class accuracy, shot bars, and per run the confusion matrix and weight norms when present. */
export function classCharts(runs: readonly ReportRun[]): { charts: Chart[]; notes: string[] } {
  const notes: string[] = [];
  const charts: Chart[] = [];
  const perClass = perClassChart(runs, notes);
  if (perClass) charts.push(perClass);
  const shots = shotChart(runs, notes);
  if (shots) charts.push(shots);
  for (const r of runs) {
    if (r.summary.confusion && r.summary.confusion.length > 0) charts.push(confusionChart(r));
    else notes.push(`Confusion matrix of ${r.label} omitted: its summary.json has no confusion field.`);
  }
  const domain = normsDomain(runs);
  for (const r of runs) {
    if (r.summary.weightNorms) charts.push(normsChart(r, domain));
    else notes.push(`Weight-norm chart of ${r.label} omitted: its summary.json has no weightNorms field.`);
  }
  return { charts, notes };
}
