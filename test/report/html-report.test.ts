import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import {
  type HtmlReportFiles,
  headToTail,
  ReportInputError,
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
  const m = new RegExp(`<figure id="${id}">([\\s\\S]*?)</figure>`).exec(html);
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
    assert.ok(figure(id).includes('>bbn</text>') && figure(id).includes('>ce</text>'), `${id}: both runs`);
  }
  assert.ok(figure('lr').includes('>bbn = ce</text>'), 'identical schedules share one labelled line');
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
  assert.match(r.notes.join('\n'), /Confusion matrix of bare omitted/);
  assert.match(r.notes.join('\n'), /Weight-norm chart of bare omitted/);
  assert.match(readFileSync(r.html, 'utf8'), /<h2>Not shown<\/h2>/);
});

test('html report - a directory that is not a run is refused by name', async () => {
  await assert.rejects(
    writeHtmlReport([join(root, 'nope')], join(root, 'x.html')),
    (e: unknown) => e instanceof ReportInputError && e.file.endsWith('metrics.jsonl'),
  );
});
