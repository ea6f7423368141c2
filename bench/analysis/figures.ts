/**
 * From the job results of a study to its artefacts: the aggregated JSON
 * (`bench/analysis/results/STUDY.json`), the PNG (`docs/analysis/STUDY.png`, Vega-Lite rendered
 * headlessly by the report's `renderSvg`/`svgToPng`) and the study's section of docs/analysis.md
 * (the markdown between `<!-- analysis:STUDY -->` and `<!-- /analysis:STUDY -->`), which states
 * the command, the date of the runs and what was run. Nothing is written by hand: a rerun
 * regenerates all three.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { ALPHA_SCHEDULES } from '../../src/core/config.ts';
import { CHART_CONFIG, RUN_PALETTE } from '../../src/report/chart-api.ts';
import { renderSvg, svgToPng } from '../../src/report/render.ts';
import { EPOCHS, type JobResult, RESULTS, scheduleOf, sizeOf } from './jobs.ts';
import { mean, meanSdCell, pctCell, sd, welch } from './stats.ts';
import type { Study } from './studies.ts';
import { trajectorySection } from './trajectory.ts';

const DOC = 'docs/analysis.md';
const PNG_DIR = 'docs/analysis';
const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const LABEL = { ce: 'CE', rw: 'RW', rs: 'RS', drw: 'DRW', bbn: 'BBN' } as const;
const ALPHA_LABEL: Record<string, string> = {
  parabolic_decay: 'parabolic decay (BBN)',
  linear_decay: 'linear decay',
  cosine_decay: 'cosine decay',
  parabolic_increment: 'parabolic increment',
  equal: 'equal weight (0.5)',
  beta: 'β-distribution (0.2, 0.2)',
  separated: 'separated stage (1, then 0)',
};

/** A row of a bar table: its label and each seed's outcome. */
interface Group {
  readonly label: string;
  readonly outcomes: readonly {
    top1: number;
    many: number | null;
    medium: number | null;
    few: number | null;
  }[];
  readonly seeds: readonly number[];
}

const seedsOf = (rs: readonly JobResult[]) => [...new Set(rs.map((r) => r.job.seed))].sort((a, b) => a - b);

function header(
  study: Study,
  results: readonly JobResult[],
  seeds: readonly number[],
  epochs: number,
): string {
  const dates = results.map((r) => r.date.slice(0, 10)).sort();
  const wall = results.reduce((a, r) => a + r.wallSeconds, 0);
  const cpu = results.reduce((a, r) => a + r.cpuSeconds, 0);
  return [
    `Made by \`npm run analysis:${study} -- --seeds ${seeds.join(',')}${epochs === EPOCHS ? '' : ` --epochs ${epochs}`}\` from the runs present (made ` +
      `${dates[0]}${dates.at(-1) !== dates[0] ? ` to ${dates.at(-1)}` : ''}): ${results.length} runs, seeds ` +
      `${seedsOf(results).join(', ')}; ${(wall / 60).toFixed(0)} min wall, ${(cpu / 60).toFixed(0)} min CPU in all. ` +
      `Size: configs/mnist-lt.yaml with \`${sizeOf(epochs).join(' ')}\`. Accuracies are last-epoch test top-1 (%); cells are mean ± sample sd over seeds (the value alone for one run).`,
  ].join('\n');
}

function shotTable(groups: readonly Group[], first: string): string[] {
  return [
    `| ${first} | runs | top-1 % | many % | medium % | few % |`,
    '|---|---|---|---|---|---|',
    ...groups.map((g) => {
      const o = g.outcomes;
      return `| ${g.label} | ${o.length} | ${pctCell(o.map((x) => x.top1))} | ${pctCell(o.map((x) => x.many))} | ${pctCell(o.map((x) => x.medium))} | ${pctCell(o.map((x) => x.few))} |`;
    }),
  ];
}

/** Bars of the mean top-1 per group, the sd as an error bar and every seed as a point. */

/** The layers of a top-1 bar chart over seeds: the mean as a bar, ± one sample sd, and each seed as a dot. */
function meanSdSeedLayers<X>(x: X, dotSize: number) {
  const y = { field: 'top1', type: 'quantitative', title: 'top-1 accuracy (%)' } as const;
  return [
    {
      mark: { type: 'bar' as const, color: RUN_PALETTE[0], opacity: 0.7 },
      encoding: { x, y: { ...y, aggregate: 'mean' as const, scale: { domain: [0, 100] } } },
    },
    { mark: { type: 'errorbar' as const, extent: 'stdev' as const }, encoding: { x, y } },
    { mark: { type: 'point' as const, filled: true, color: 'black', size: dotSize }, encoding: { x, y } },
  ];
}
function barSpec(title: string, groups: readonly Group[], xTitle: string): TopLevelSpec {
  const values = groups.flatMap((g) =>
    g.outcomes.map((o, i) => ({ group: g.label, seed: g.seeds[i], top1: 100 * o.top1 })),
  );
  const x = {
    field: 'group',
    type: 'nominal' as const,
    sort: groups.map((g) => g.label),
    title: xTitle,
    axis: { labelAngle: -30, labelLimit: 260 },
  };
  return {
    $schema: SCHEMA,
    width: 520,
    height: 260,
    title: { text: title, subtitle: 'bar: mean over seeds; whisker: ± sample sd; dots: seeds' },
    config: CHART_CONFIG,
    data: { values },
    layer: meanSdSeedLayers(x, 24),
  };
}

function normsSection(results: readonly JobResult[]): {
  spec: TopLevelSpec;
  lines: string[];
  rows: unknown[];
} {
  const counts = results[0]?.trainCounts ?? [];
  const order = counts.map((_, c) => c).sort((a, b) => counts[b] - counts[a] || a - b);
  const classLabel = (c: number) => `${c} (n=${counts[c]})`;
  const series: { label: string; pick: (r: JobResult) => number[] | undefined; method: string }[] = [
    ...(['ce', 'rw', 'rs'] as const).map((m) => ({
      label: LABEL[m],
      method: m,
      pick: (r: JobResult) => r.final.weightNorms.all,
    })),
    { label: 'BBN, whole W', method: 'bbn', pick: (r) => r.final.weightNorms.all },
    { label: 'BBN, W_c (conventional)', method: 'bbn', pick: (r) => r.final.weightNorms.cb },
    { label: 'BBN, W_r (re-balancing)', method: 'bbn', pick: (r) => r.final.weightNorms.rb },
  ];
  const rows = series
    .map((s) => {
      const runs = results
        .filter((r) => r.job.method === s.method)
        .map(s.pick)
        .filter((n): n is number[] => !!n);
      const perClass = order.map((c) => mean(runs.map((n) => n[c])));
      const std = runs.map((n) => sd(n) * Math.sqrt((n.length - 1) / n.length)); // population σ over classes, as np.std
      const cv = runs.map((n, i) => std[i] / mean(n));
      const ratio = runs.map((n) => n[order.at(-1)!] / n[order[0]]);
      return { label: s.label, runs: runs.length, perClass, std, cv, ratio };
    })
    .filter((r) => r.runs > 0);
  const lines = [
    '| classifier | runs | σ of the class norms | σ / mean | tail / head norm (class 9 / class 0) | per-class norm, head → tail (mean over seeds) |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.runs} | ${meanSdCell(r.std, 3)} | ${meanSdCell(r.cv, 3)} | ${meanSdCell(r.ratio, 2)} | ${r.perClass.map((x) => x.toFixed(2)).join(', ')} |`,
    ),
  ];
  const values = rows.flatMap((r) =>
    r.perClass.map((norm, i) => ({ series: r.label, class: classLabel(order[i]), norm })),
  );
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    width: 560,
    height: 300,
    title: {
      text: 'Classifier weight norm per class (paper Fig. 4)',
      subtitle: 'L2 norm of each class’s weight vector, mean over seeds; head (left) → tail (right)',
    },
    config: CHART_CONFIG,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: 'class',
        type: 'ordinal',
        sort: order.map(classLabel),
        title: 'class id (training images)',
        axis: { labelAngle: -45 },
      },
      y: { field: 'norm', type: 'quantitative', title: 'weight norm', scale: { zero: false } },
      color: {
        field: 'series',
        type: 'nominal',
        title: 'classifier',
        sort: rows.map((r) => r.label),
        scale: { range: [...RUN_PALETTE] },
      },
      strokeDash: {
        condition: { test: "indexof(datum.series, 'BBN,') === 0", value: [6, 3] },
        value: [1, 0],
      },
    },
  };
  return { spec, lines, rows };
}

function decoupleSection(results: readonly JobResult[]): {
  spec: TopLevelSpec;
  lines: string[];
  rows: unknown[];
} {
  const reps = ['ce', 'rw', 'rs'] as const;
  const learners = ['joint', 'ce', 'rw', 'rs'] as const;
  const colLabel = { joint: 'none (as trained)', ce: 'CE', rw: 'RW', rs: 'RS (cRT)' } as const;
  const cells = reps.flatMap((rep) =>
    learners.map((l) => {
      const rs = results.filter((r) => r.job.method === rep);
      const outs = rs.map((r) => (l === 'joint' ? r.final : r.classifiers[l])).filter((o) => o !== undefined);
      return { representation: LABEL[rep], classifier: colLabel[l], outs };
    }),
  );
  const table = (key: 'top1' | 'few', what: string) => [
    `| ${what}: representation ↓ / classifier → | ${learners.map((l) => colLabel[l]).join(' | ')} |`,
    `|---|${learners.map(() => '---|').join('')}`,
    ...reps.map(
      (rep) =>
        `| ${LABEL[rep]} | ${learners.map((l) => pctCell(cells.find((c) => c.representation === LABEL[rep] && c.classifier === colLabel[l])!.outs.map((o) => o[key]))).join(' | ')} |`,
    ),
  ];
  const lines = [...table('top1', 'top-1 %'), '', ...table('few', 'few-shot %')];
  const values = cells
    .filter((c) => c.outs.length > 0)
    .map((c) => {
      const v = c.outs.map((o) => 100 * o.top1);
      return {
        representation: c.representation,
        classifier: c.classifier,
        top1: mean(v),
        text: `${mean(v).toFixed(1)} ± ${sd(v).toFixed(1)}`,
      };
    });
  const enc = {
    x: {
      field: 'classifier',
      type: 'nominal' as const,
      sort: learners.map((l) => colLabel[l]),
      title: 'classifier learnt with (backbone frozen)',
      axis: { labelAngle: 0, grid: false },
    },
    y: {
      field: 'representation',
      type: 'nominal' as const,
      sort: reps.map((r) => LABEL[r]),
      title: 'representation learnt with',
      axis: { grid: false },
    },
  };
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    width: 480,
    height: 200,
    title: {
      text: 'Decoupling: representation × classifier (paper Fig. 2)',
      subtitle: 'last-epoch test top-1 (%), mean ± sd over seeds',
    },
    config: CHART_CONFIG,
    data: { values },
    layer: [
      {
        mark: 'rect',
        encoding: {
          ...enc,
          color: {
            field: 'top1',
            type: 'quantitative',
            title: 'top-1 %',
            scale: { scheme: 'blues', domain: [0, 100] },
          },
        },
      },
      {
        mark: { type: 'text', fontSize: 13 },
        encoding: {
          ...enc,
          text: { field: 'text' },
          color: { condition: { test: 'datum.top1 > 60', value: 'white' }, value: 'black' },
        },
      },
    ],
  };
  return {
    spec,
    lines,
    rows: cells.map((c) => ({
      representation: c.representation,
      classifier: c.classifier,
      runs: c.outs.map((o) => ({ top1: o.top1, few: o.few })),
    })),
  };
}

function groupsBy(
  results: readonly JobResult[],
  keys: readonly string[],
  keyOf: (r: JobResult) => string,
  labelOf: (k: string) => string,
): Group[] {
  return keys
    .map((k) => {
      const rs = results.filter((r) => keyOf(r) === k).sort((a, b) => a.job.seed - b.job.seed);
      return { label: labelOf(k), outcomes: rs.map((r) => r.final), seeds: rs.map((r) => r.job.seed) };
    })
    .filter((g) => g.outcomes.length > 0);
}

/** The best mean first; against the first group (the paper's choice) a Welch test each. */
function ordering(groups: readonly Group[], reference: string): string {
  const pct = (g: Group) => mean(g.outcomes.map((o) => 100 * o.top1));
  const byMean = [...groups].sort((a, b) => pct(b) - pct(a));
  const ref = groups.find((g) => g.label === reference);
  const order = byMean.map((g) => `${g.label} ${pct(g).toFixed(1)}`).join(' > ');
  if (!ref) return `Order by mean top-1: ${order}.`;
  const tests = groups
    .filter((g) => g !== ref)
    .map((g) => {
      const w = welch(
        ref.outcomes.map((o) => 100 * o.top1),
        g.outcomes.map((o) => 100 * o.top1),
      );
      return w
        ? `${g.label} ${w.diff >= 0 ? '+' : ''}${w.diff.toFixed(1)} (p ${Number.isNaN(w.p) ? '-' : w.p < 0.01 ? '< 0.01' : w.p.toFixed(2)})`
        : `${g.label}: too few runs`;
    });
  if (tests.length === 0) return `Order by mean top-1: ${order}.`;
  return `Order by mean top-1: ${order}. ${reference} minus each (Welch two-sided p): ${tests.join('; ')}.`;
}

function ablationSection(results: readonly JobResult[], study: 'alpha' | 'sampler', epochs: number) {
  const groups =
    study === 'alpha'
      ? groupsBy(
          results,
          ALPHA_SCHEDULES,
          (r) => r.job.alpha,
          (k) => ALPHA_LABEL[k],
        )
      : groupsBy(
          results,
          ['reversed', 'balanced', 'uniform'],
          (r) => r.job.sampler,
          (k) => (k === 'reversed' ? 'reversed (BBN)' : k),
        );
  const first = study === 'alpha' ? 'α schedule (cumulative learning)' : 're-balancing branch sampler';
  const lines = [...shotTable(groups, first), '', ordering(groups, groups[0]?.label ?? '')];
  if (study === 'alpha') {
    const sch = scheduleOf(epochs);
    const at = [1, sch.milestones[0], sch.alphaHalfEpoch, epochs];
    lines.push('', `| schedule | α at epochs ${at.join(' / ')} |`, '|---|---|');
    for (const k of ALPHA_SCHEDULES) {
      const r = results.find((x) => x.job.alpha === k);
      if (r)
        lines.push(
          `| ${ALPHA_LABEL[k]} | ${k === 'beta' ? 'Beta(0.2, 0.2) per batch' : at.map((e) => r.epochs[e - 1].alpha?.toFixed(3)).join(' / ')} |`,
        );
    }
  }
  const title =
    study === 'alpha'
      ? 'BBN: α schedule ablation (paper Table 4)'
      : 'BBN: re-balancing sampler ablation (paper Table 3)';
  const spec = barSpec(title, groups, first);
  return { spec, lines, rows: groups };
}

function regimeSection(results: readonly JobResult[], epochs: number, reference: readonly JobResult[]) {
  const methods = ['ce', 'rw', 'rs', 'drw', 'decouple', 'bbn'] as const;
  const lines: string[] = [];
  const rows: unknown[] = [];
  const values: { ir: string; method: string; seed: number; top1: number }[] = [];
  for (const ir of [100, 10]) {
    const groups: Group[] = methods
      .map((m) => {
        const rs = results
          .filter((r) => r.job.ir === ir && r.job.method === (m === 'decouple' ? 'ce' : m))
          .sort((a, b) => a.job.seed - b.job.seed);
        const outs = rs.map((r) => (m === 'decouple' ? r.classifiers.rs : r.final));
        const keep = outs.map((o, i) => [o, rs[i].job.seed] as const).filter((x) => x[0] !== undefined);
        return {
          label: m === 'decouple' ? 'decoupling (cRT)' : LABEL[m],
          outcomes: keep.map((x) => x[0]!),
          seeds: keep.map((x) => x[1]),
        };
      })
      .filter((g) => g.outcomes.length > 0);
    if (groups.length === 0) continue;
    lines.push(`**IR ${ir}**`, '', ...shotTable(groups, 'method'), '', ordering(groups, 'BBN'), '');
    rows.push({ ir, groups });
    for (const g of groups) {
      for (const [i, o] of g.outcomes.entries()) {
        values.push({ ir: `IR ${ir}`, method: g.label, seed: g.seeds[i], top1: 100 * o.top1 });
      }
    }
  }
  const sort = methods.map((m) => (m === 'decouple' ? 'decoupling (cRT)' : LABEL[m]));
  const x = { field: 'method', type: 'nominal' as const, sort, title: null, axis: { labelAngle: -30 } };
  const title = {
    text: `MNIST-LT, ${epochs} epochs: BBN against the baselines`,
    subtitle: 'bar: mean over seeds; whisker: ± sample sd; dots: seeds',
  };
  const bars = {
    data: { values },
    facet: { column: { field: 'ir', type: 'nominal' as const, title: null, sort: ['IR 100', 'IR 10'] } },
    spec: { width: 260, height: 240, layer: meanSdSeedLayers(x, 20) },
  };
  if (reference.length === 0) {
    return { spec: { $schema: SCHEMA, title, config: CHART_CONFIG, ...bars } as TopLevelSpec, lines, rows };
  }
  // At another length: BBN's trajectory beside the reference (12-epoch) runs, under the bars.
  const t = trajectorySection(results, reference);
  const spec = {
    $schema: SCHEMA,
    config: CHART_CONFIG,
    vconcat: [{ title, ...bars }, t.spec],
  } as TopLevelSpec;
  return { spec, lines: [...lines, ...t.lines], rows: [...rows, { trajectory: t.rows }] };
}

/** Writes the study's JSON, PNG and doc section from `results`; returns the section's markdown. */
export async function renderStudy(
  study: Study,
  results: readonly JobResult[],
  seeds: readonly number[] = seedsOf(results),
  epochs: number = EPOCHS,
  reference: readonly JobResult[] = [],
): Promise<string> {
  const name = epochs === EPOCHS ? study : `${study}-e${epochs}`;
  if (results.length === 0) return `${name}: no results yet`;
  const { spec, lines, rows } =
    study === 'norms'
      ? normsSection(results)
      : study === 'decouple'
        ? decoupleSection(results)
        : study === 'regime'
          ? regimeSection(results, epochs, reference)
          : ablationSection(results, study, epochs);
  // A figure of another length says so in its title (the regime's title names its epochs already).
  const t = 'title' in spec ? spec.title : undefined;
  if (epochs !== EPOCHS && study !== 'regime' && t && typeof t === 'object' && 'text' in t) {
    t.text = `${t.text}, ${epochs} epochs`;
  }
  mkdirSync(PNG_DIR, { recursive: true });
  writeFileSync(join(PNG_DIR, `${name}.png`), await svgToPng(await renderSvg(spec)));
  const made = header(study, results, seeds, epochs);
  writeFileSync(
    join(RESULTS, `${name}.json`),
    `${JSON.stringify({ study: name, made, size: sizeOf(epochs), rows, runs: results.map((r) => r.id) }, null, 1)}\n`,
  );
  const section = [made, '', `![${name}](analysis/${name}.png)`, '', ...lines].join('\n');
  const open = `<!-- analysis:${name} -->`;
  const close = `<!-- /analysis:${name} -->`;
  const doc = existsSync(DOC) ? readFileSync(DOC, 'utf8') : '';
  const [i, j] = [doc.indexOf(open), doc.indexOf(close)];
  if (i >= 0 && j > i) writeFileSync(DOC, `${doc.slice(0, i + open.length)}\n${section}\n${doc.slice(j)}`);
  else
    process.stderr.write(`${DOC} has no ${open} … ${close} section: add one to have ${name} written there\n`);
  return section;
}
