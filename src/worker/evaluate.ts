/** Test-set evaluation: eval-mode logits (BBN: trunk once, both branches, α = 0.5 path), then per-class and shot accuracy. */
import type { RunConfig } from '../core/config.ts';
import { type AccuracyReport, accuracyReport, argmax } from '../core/metrics.ts';
import type { LoadedData } from '../data/api.ts';
import { assembleBatch } from '../data/batch.ts';
import type { Model } from '../model/api.ts';

/** Accuracy of `model` on `data.test`, with the predictions. */
export async function evaluateModel(
  model: Model,
  data: LoadedData,
  cfg: Pick<RunConfig, 'eval'>,
): Promise<AccuracyReport & { predictions: Int32Array }> {
  const { test, augment, trainCounts } = data;
  const bs = cfg.eval.batchSize;
  const C = test.numClasses;
  const predictions = new Int32Array(test.size);
  for (let start = 0; start < test.size; start += bs) {
    const idx = Int32Array.from({ length: Math.min(bs, test.size - start) }, (_, i) => start + i);
    const batch = await assembleBatch(test, idx, { train: false, spec: augment });
    predictions.set(argmax(model.predict(batch.x, bs), C), start);
  }
  const report = accuracyReport(
    predictions,
    test.labels,
    C,
    trainCounts,
    cfg.eval.manyThreshold,
    cfg.eval.fewThreshold,
  );
  return { ...report, predictions };
}
