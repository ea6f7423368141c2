import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as core from '../../src/core/index.ts';
import * as pkg from '../../src/index.ts';

/** Every runtime export the other layers rely on (types are checked by tsc). */
const RUNTIME_EXPORTS = [
  // rng.ts, config.ts
  'Rng',
  'CoreValueError',
  'ConfigError',
  'parseRunConfig',
  'applyOverrides',
  'runConfigSchema',
  'METHODS',
  'ALPHA_SCHEDULES',
  'LR_SCHEDULES',
  'BACKENDS',
  // profiles.ts
  'exponentialCounts',
  'stepCounts',
  'classCounts',
  'imbalanceRatioOf',
  'subsampleLongTail',
  'shotGroups',
  'powCorrectlyRounded',
  // samplers.ts
  'ClassIndex',
  'reversedWeights',
  'cumulativeWeights',
  'inverseCdfPick',
  'classProbabilities',
  'createRebalanceSampler',
  'uniformEpochOrder',
  'REBALANCE_KINDS',
  // alpha.ts, lr.ts
  'divEpoch',
  'alphaAt',
  'isPerBatchAlpha',
  'lrAt',
  // epoch-plan.ts
  'planEpoch',
  'shardRange',
  'shardOf',
  'planDigest',
  // methods.ts
  'epochPolicy',
  'totalEpochs',
  'variantOf',
  'inverseFrequencyWeights',
  'effectiveNumberWeights',
  // metrics.ts
  'confusionMatrix',
  'accuracyReport',
  'topK',
  'argmax',
];

describe('core public entry', () => {
  it('src/core/index.ts exports every core function, class and constant by name', () => {
    for (const name of RUNTIME_EXPORTS) assert.ok(name in core, `missing export ${name}`);
  });

  it('the package entry src/index.ts re-exports the same bindings', () => {
    for (const name of RUNTIME_EXPORTS) {
      assert.equal((pkg as Record<string, unknown>)[name], (core as Record<string, unknown>)[name], name);
    }
  });

  it('works end to end through the entry: counts, plan and shard of a small long-tailed set', () => {
    const counts = pkg.exponentialCounts(50, 5, 10);
    const labels = counts.flatMap((n, c) => new Array<number>(n).fill(c));
    const plan = pkg.planEpoch({
      seed: 1,
      epoch: 1,
      labels,
      numClasses: 5,
      globalBatch: 16,
      rebalance: 'reversed',
    });
    assert.equal(plan.steps, Math.floor(labels.length / 16));
    assert.equal(pkg.shardOf(plan, 0, 1, 2).uniform.length, 8);
  });
});
