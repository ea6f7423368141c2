/**
 * Headless chart rendering: Vega-Lite → Vega → SVG string (vega's own SVG renderer, no browser,
 * no canvas) → PNG (sharp, which rasterises SVG with librsvg; text needs a font fontconfig can
 * find, e.g. DejaVu Sans).
 */
import sharp from 'sharp';
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** Renders a Vega-Lite spec to a standalone SVG document string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize(); // release the dataflow's timers and listeners
  }
}

/** Rasterises an SVG to PNG at `scale` × its CSS pixel size (default 2, for sharp text). */
export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 72 * scale })
    .png()
    .toBuffer();
}
