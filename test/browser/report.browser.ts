/**
 * Opens the HTML report in a real headless Chromium (playwright-core driving the system's
 * `chromium`, or BBN_CHROMIUM) and checks what a reader sees: every chart's SVG is laid out with
 * a real size, axis titles render as text of real width, and the page makes no network request.
 * Run by `npm run test:browser` (not part of test:unit: it needs a browser binary).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { writeHtmlReport } from '../../src/report/index.ts';
import { writeSyntheticRun } from '../report/fixtures.ts';

function chromiumPath(): string {
  const candidates = [process.env.BBN_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  const found = candidates.find((p) => p && existsSync(p));
  if (!found) {
    throw new Error(
      'no Chromium found (set BBN_CHROMIUM, or apt-get install chromium): the browser test cannot run',
    );
  }
  return found;
}

test('html report in Chromium - every chart is laid out and labelled, nothing overflows, confusion matrices span the page, no network', async () => {
  const root = mkdtempSync(join(tmpdir(), 'bbn-browser-'));
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
  try {
    writeSyntheticRun(join(root, 'bbn'), { name: 'bbn', method: 'bbn', skill: 0.05 });
    writeSyntheticRun(join(root, 'ce'), { name: 'ce', method: 'ce', bbn: false });
    const files = await writeHtmlReport([join(root, 'bbn'), join(root, 'ce')], join(root, 'report.html'), {
      png: false,
    });
    const page_ = await browser.newPage();
    await page_.setViewportSize({ width: 1280, height: 900 });
    const requests: string[] = [];
    const errors: string[] = [];
    page_.on('request', (r) => requests.push(r.url()));
    page_.on('pageerror', (e) => errors.push(e.message));
    page_.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    const url = pathToFileURL(files.html).href;
    await page_.goto(url);
    const figures = await page_.$$eval('figure', (fs) =>
      fs.map((f) => {
        const svg = f.querySelector('svg');
        const box = svg?.getBoundingClientRect();
        const texts = [...f.querySelectorAll('svg text')].map((t) => ({
          text: t.textContent ?? '',
          width: (t as SVGTextElement).getBBox().width,
        }));
        // Text outside its chart's box overflows (cut by nothing, drawn over its neighbours).
        const outside = [...f.querySelectorAll('svg text')]
          .map((t) => ({ text: t.textContent ?? '', r: t.getBoundingClientRect() }))
          .filter(
            ({ r }) =>
              box &&
              r.width > 0 &&
              (r.left < box.left - 1 ||
                r.right > box.right + 1 ||
                r.top < box.top - 1 ||
                r.bottom > box.bottom + 1),
          )
          .map(({ text }) => text);
        const headings = f.querySelectorAll('h1, h2, h3').length;
        return {
          id: f.id,
          width: box?.width ?? 0,
          height: box?.height ?? 0,
          texts,
          outside,
          headings,
        };
      }),
    );
    const page = await page_.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
      mainWidth: document.querySelector('main')?.getBoundingClientRect().width ?? 0,
    }));
    assert.deepEqual(
      figures.map((f) => f.id),
      files.charts,
    );
    for (const f of figures) {
      assert.ok(f.width > 300 && f.height > 150, `${f.id}: svg laid out at ${f.width}x${f.height}`);
      assert.ok(
        f.texts.some((t) => t.text === 'epoch' || t.text.includes('class')) || f.id.startsWith('shots'),
        `${f.id}: has an x-axis title`,
      );
      const blank = f.texts.filter((t) => t.text.trim() !== '' && t.width <= 0);
      assert.deepEqual(blank, [], `${f.id}: every text renders with a width`);
      assert.deepEqual(f.outside, [], `${f.id}: no text overflows its chart`);
      assert.equal(f.headings, 0, `${f.id}: no heading repeats the chart's own title`);
      if (f.id.startsWith('confusion-')) {
        assert.ok(f.width >= 0.9 * page.mainWidth, `${f.id}: ${f.width} px of the page's ${page.mainWidth}`);
      }
    }
    assert.ok(
      page.scrollWidth <= page.innerWidth,
      `no horizontal scroll (${page.scrollWidth} > ${page.innerWidth})`,
    );
    assert.deepEqual(
      requests.filter((r) => r !== url),
      [],
      'self-contained: no request beyond the page itself',
    );
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    rmSync(root, { recursive: true, force: true });
  }
});
