/**
 * The tiny learnable long-tailed problem that trainer, distributed and workflow tests share:
 * 4 classes of 8x8x1 synthetic images (48 per class at imbalance 8: 48, 24, 12, 6), ResNet-8 of
 * width 4, batch 16, so 5 steps per epoch and seconds per run.
 */
import { parseRunConfig, type RunConfig } from '../../src/core/config.ts';

/** The raw config (what a YAML file would hold). */
export const TINY_RUN = {
  name: 'tiny',
  seed: 3,
  dataset: {
    kind: 'synthetic',
    numClasses: 4,
    perClass: 48,
    testPerClass: 12,
    imageSize: 8,
    channels: 1,
    imbalanceRatio: 8,
  },
  model: { depth: 8, baseWidth: 4 },
  train: {
    epochs: 4,
    batchSize: 16,
    lr: 0.05,
    lrSchedule: { name: 'multistep', milestones: [3], gamma: 0.1 },
  },
  eval: { batchSize: 32, manyThreshold: 20, fewThreshold: 10 },
  checkpoint: { keep: 10 },
} as const;

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `base` with `extra` merged in, section by section. */
export function mergeDeep(base: Plain, extra: Plain): Plain {
  const out: Plain = structuredClone(base);
  for (const [k, v] of Object.entries(extra))
    out[k] = isPlain(v) && isPlain(out[k]) ? mergeDeep(out[k] as Plain, v) : v;
  return out;
}

/** The tiny raw config with `extra` merged in (e.g. `{ method: 'ce', train: { epochs: 1 } }`). */
export function tinyRun(extra: Plain = {}): Plain {
  return mergeDeep(TINY_RUN as unknown as Plain, extra);
}

/** The tiny config, parsed, with `extra` merged in. */
export function tinyConfig(extra: Plain = {}): RunConfig {
  return parseRunConfig(tinyRun(extra));
}
