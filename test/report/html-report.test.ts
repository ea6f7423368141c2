import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { RUN_PALETTE } from '../../src/report/chart-api.ts';
import { WIDE_WIDTH } from '../../src/report/classes.ts';
import {
  type HtmlReportFiles,
  headToTail,
  planReport,
  ReportInputError,
  readReportRuns,
  writeHtmlReport,
} from '../../src/report/index.ts';
import { writeSyntheticRun } from './fixtures.ts';

let root: string;
let two: HtmlReportFiles;
let html: string;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'bbn-report-'));
  writeSyntheticRun(join(root, 'bbn'), { name: 'bbn', method: 'bbn', skill: 0.05 });
  writeSyntheticRun(join(root, 'ce'), { name: 'ce', method: 'ce', bbn: false });
  two = await writeHtmlReport([join(root, 'bbn'), join(root, 'ce')], join(root, 'out', 'report.html'));
  html = readFileSync(two.html, 'utf8');
});

after(() => rmSync(root, { recursive: true, force: true }));

/** The <figure> of chart `id`. */
function figure(id: string): string {
  const m = new RegExp(`<figure id="${id}"[^>]*>([\\s\\S]*?)</figure>`).exec(html);
  assert.ok(m, `no figure ${id}`);
  return m[1];
}

test('html report - one inline svg per chart, side by side for two runs, nothing left out', () => {
  assert.deepEqual(two.charts, [
    'loss',
    'accuracy',
    'alpha',
    'lr',
    'per-class',
    'shots',
    'confusion-bbn',
    'confusion-ce',
    'weight-norms-bbn',
    'weight-norms-ce',
  ]);
  assert.deepEqual(two.notes, []);
  assert.equal((html.match(/<svg/g) ?? []).length, two.charts.length);
  assert.doesNotMatch(html, /<script|src="http|href="http/, 'self-contained: no scripts, no network');
});

test('html report - every chart has axis titles and run legends', () => {
  const titles: Record<string, string[]> = {
    loss: ['epoch', 'training loss (cross-entropy)'],
    accuracy: ['epoch', 'accuracy (%)'],
    alpha: ['epoch', 'α (conventional-branch weight)'],
    lr: ['epoch', 'learning rate'],
    'per-class': ['class id (training images), head → tail', 'top-1 accuracy (%)'],
    shots: ['class group (by training images)', 'top-1 accuracy (%)'],
    'confusion-bbn': ['predicted class', 'true class'],
    'weight-norms-bbn': ['class id (training images), head → tail', 'L2 norm of the class weight vector'],
  };
  for (const [id, want] of Object.entries(titles)) {
    const fig = figure(id);
    for (const t of want) assert.ok(fig.includes(`>${t}</text>`), `${id}: axis title "${t}"`);
  }
  for (const id of ['loss', 'per-class', 'shots']) {
    assert.ok(
      figure(id).includes('>bbn (bbn)</text>') && figure(id).includes('>ce (ce)</text>'),
      `${id}: both runs, each labelled by its directory and method`,
    );
  }
  assert.ok(
    figure('lr').includes('>bbn (bbn) = ce (ce)</text>'),
    'identical schedules share one labelled line',
  );
  assert.ok(figure('weight-norms-bbn').includes('W_r re-balancing half (mean'));
});

test('html report - per-class axis runs head to tail by training count', () => {
  const fig = figure('per-class');
  const counts = JSON.parse(readFileSync(join(root, 'bbn', 'summary.json'), 'utf8')).trainCounts as number[];
  const order = headToTail(counts.length, counts);
  const positions = order.map((c) => fig.indexOf(`>${c} (n=${counts[c]})</text>`));
  assert.ok(
    positions.every((p) => p >= 0),
    'every class labelled',
  );
  assert.deepEqual(
    [...positions].sort((a, b) => a - b),
    positions,
    'labels appear in head-to-tail order',
  );
  assert.notDeepEqual(
    order,
    [...order].sort((a, b) => a - b),
    'the fixture is not already in id order',
  );
});

test('html report - PNGs exist, one per chart, with real pixels', async () => {
  assert.equal(two.pngs.length, two.charts.length);
  for (const png of two.pngs) {
    assert.ok(statSync(png).size > 10_000, `${png} is ${statSync(png).size} bytes`);
    const { width, height } = await sharp(png).metadata();
    assert.ok((width ?? 0) >= 500 && (height ?? 0) >= 250, `${png}: ${width}x${height}`);
    const { channels } = await sharp(png).stats();
    assert.ok(channels[0].min < 100, `${png} has dark pixels (text, lines), not just background`);
  }
});

test('html report - absent data is noted, not drawn', async () => {
  const dir = join(root, 'bare');
  writeSyntheticRun(dir, { name: 'bare', method: 'ce', bbn: false, numClasses: 4, epochs: 3 });
  const s = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
  delete s.trainCounts;
  delete s.confusion;
  delete s.weightNorms;
  writeFileSync(join(dir, 'summary.json'), JSON.stringify(s));
  const r = await writeHtmlReport([dir], join(root, 'bare.html'), { png: false });
  assert.deepEqual(r.charts, ['loss', 'accuracy', 'lr', 'per-class', 'shots']);
  assert.deepEqual(r.pngs, []);
  assert.equal(r.notes.length, 4);
  assert.match(r.notes.join('\n'), /α chart omitted/);
  assert.match(r.notes.join('\n'), /class id order: summary.json has no trainCounts/);
  assert.match(r.notes.join('\n'), /Confusion matrix of bare \(ce\) omitted/);
  assert.match(r.notes.join('\n'), /Weight-norm chart of bare \(ce\) omitted/);
  assert.match(readFileSync(r.html, 'utf8'), /<h2>Not shown<\/h2>/);
});

test('html report - a directory that is not a run is refused by name', async () => {
  await assert.rejects(
    writeHtmlReport([join(root, 'nope')], join(root, 'x.html')),
    (e: unknown) => e instanceof ReportInputError && e.file.endsWith('metrics.jsonl'),
  );
});

/** The colour scale of every chart coloured by run: its series and their colours. */
function runColours(runs: ReturnType<typeof readReportRuns>): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const c of planReport(runs).charts) {
    const color = (
      c.spec as { encoding?: { color?: { field?: string; scale?: { domain: string[]; range: string[] } } } }
    ).encoding?.color;
    if (color?.field !== 'run' || !color.scale) continue;
    out.set(c.id, new Map(color.scale.domain.map((d, i) => [d, color.scale!.range[i]])));
  }
  return out;
}

test('html report - each run keeps one colour in every chart, given in command-line order', () => {
  const forward = runColours(readReportRuns([join(root, 'bbn'), join(root, 'ce')]));
  assert.deepEqual([...forward.keys()], ['loss', 'accuracy', 'alpha', 'lr', 'per-class', 'shots']);
  for (const [id, colours] of forward) {
    if (colours.has('bbn (bbn)')) assert.equal(colours.get('bbn (bbn)'), RUN_PALETTE[0], id);
    if (colours.has('ce (ce)')) assert.equal(colours.get('ce (ce)'), RUN_PALETTE[1], id);
  }
  assert.equal(forward.get('lr')?.get('bbn (bbn) = ce (ce)'), RUN_PALETTE[0], 'a shared line: its first run');
  const reversed = runColours(readReportRuns([join(root, 'ce'), join(root, 'bbn')]));
  assert.equal(reversed.get('loss')?.get('ce (ce)'), RUN_PALETTE[0]);
  assert.equal(reversed.get('shots')?.get('bbn (bbn)'), RUN_PALETTE[1]);
  // And in the drawing itself: the loss lines are stroked with those colours.
  assert.ok(
    figure('loss').includes(`stroke="${RUN_PALETTE[0]}"`) &&
      figure('loss').includes(`stroke="${RUN_PALETTE[1]}"`),
  );
});

test('html report - one title per chart; confusion matrices span the page, zero cells blank; one y scale for weight norms', async () => {
  for (const id of two.charts) {
    const fig = figure(id);
    assert.doesNotMatch(fig, /<h2>/, `${id}: the figure does not repeat the chart's title`);
  }
  assert.equal(figure('loss').split('>Training loss per epoch</text>').length, 2, 'the title is drawn once');
  assert.match(html, /<figure id="confusion-bbn" class="wide"/);
  const runs = readReportRuns([join(root, 'bbn'), join(root, 'ce')]);
  const charts = planReport(runs).charts;
  const confusion = charts.find((c) => c.id === 'confusion-bbn')!;
  assert.equal((confusion.spec as { width: number }).width, WIDE_WIDTH, 'the page width');
  const yDomain = (id: string) =>
    (charts.find((c) => c.id === id)!.spec as { encoding: { y: { scale?: { domain: number[] } } } }).encoding
      .y.scale?.domain;
  assert.ok(yDomain('weight-norms-bbn'));
  assert.deepEqual(yDomain('weight-norms-bbn'), yDomain('weight-norms-ce'), 'one y range for both runs');

  // A matrix with zero cells: they get neither colour nor a "0%".
  const dir = join(root, 'zeros');
  writeSyntheticRun(dir, { name: 'zeros', method: 'ce', bbn: false, numClasses: 4, epochs: 2 });
  const s = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
  s.confusion = [
    [9, 1, 0, 0],
    [0, 10, 0, 0],
    [3, 0, 7, 0],
    [0, 0, 0, 10],
  ];
  writeFileSync(join(dir, 'summary.json'), JSON.stringify(s));
  const r = await writeHtmlReport([dir], join(root, 'zeros.html'), { png: false });
  const page = readFileSync(r.html, 'utf8');
  const fig = /<figure id="confusion-zeros"[^>]*>([\s\S]*?)<\/figure>/.exec(page)![1];
  const layer = (n: number) => new RegExp(`class="[^"]*layer_${n}_marks"[\\s\\S]*?</g>`).exec(fig)?.[0] ?? '';
  assert.deepEqual(
    [...layer(1).matchAll(/>([^<>]*)<\/text>/g)].map((m) => m[1]),
    ['90%', '10%', '100%', '30%', '70%', '100%'],
    'a number in each non-zero cell, none in the zero cells',
  );
  assert.equal((layer(0).match(/<path/g) ?? []).length, 6, 'a coloured cell for each non-zero count only');
  const svgWidth = Number(/<svg[^>]* width="(\d+)"/.exec(fig)?.[1]);
  assert.ok(svgWidth > 900 && svgWidth <= 1200, `the matrix spans the page (${svgWidth} px of 1200)`);
});

test('html report - an unfinished run is reported; settings that differ beyond the method are warned about', async () => {
  const a = join(root, 'cfg-a');
  const b = join(root, 'cfg-b');
  writeSyntheticRun(a, { name: 'a', method: 'bbn', epochs: 4 });
  writeSyntheticRun(b, { name: 'b', method: 'ce', bbn: false, epochs: 4 });
  writeFileSync(
    join(a, 'config.yaml'),
    'name: a\nmethod: bbn\ndataset:\n  imbalanceRatio: 50\ntrain:\n  epochs: 4\n',
  );
  writeFileSync(
    join(b, 'config.yaml'),
    'name: b\nmethod: ce\ndataset:\n  imbalanceRatio: 100\ntrain:\n  epochs: 10\n',
  );
  rmSync(join(b, 'summary.json'));
  const r = await writeHtmlReport([a, b], join(root, 'diff.html'), { png: false });
  const page = readFileSync(r.html, 'utf8');
  assert.deepEqual(r.warnings, [
    'the compared runs differ in more than the method: dataset.imbalanceRatio (50 vs 100), train.epochs (4 vs 10)',
  ]);
  assert.match(page, /<p class="warning">Warning: the compared runs differ/);
  assert.match(page, /<h2>Settings that differ<\/h2>/);
  assert.match(page, /<td><code>method<\/code><\/td><td>&quot;bbn&quot;<\/td><td>&quot;ce&quot;<\/td>/);
  assert.match(page, /<td>cfg-b \(ce\)<\/td><td>4\/10 \(unfinished\)<\/td>/);
  assert.ok(r.charts.includes('loss') && r.charts.includes('confusion-cfg-a'));
  assert.match(r.notes.join('\n'), /Confusion matrix of cfg-b \(ce\) omitted/);

  // Runs that differ only in their method: no warning, the method row only.
  writeFileSync(
    join(b, 'config.yaml'),
    'name: b\nmethod: ce\ndataset:\n  imbalanceRatio: 50\ntrain:\n  epochs: 4\n',
  );
  const same = await writeHtmlReport([a, b], join(root, 'same.html'), { png: false });
  assert.deepEqual(same.warnings, []);
});
