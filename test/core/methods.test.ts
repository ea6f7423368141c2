import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRunConfig } from '../../src/core/config.ts';
import {
  effectiveNumberWeights,
  epochPolicy,
  inverseFrequencyWeights,
  totalEpochs,
} from '../../src/core/methods.ts';

const counts = [500, 100, 20, 4];
const cfg = (method: string, train: Record<string, unknown> = {}) =>
  parseRunConfig({ method, dataset: { kind: 'mnist' }, train: { epochs: 10, ...train } });

describe('training methods', () => {
  it('inverse-frequency weights are proportional to 1/N_c and sum to C', () => {
    const w = inverseFrequencyWeights(counts);
    const inv = counts.map((n) => 1 / n);
    const s = inv.reduce((a, b) => a + b);
    for (const [i, x] of w.entries()) assert.ok(Math.abs(x - (inv[i] / s) * 4) < 1e-12);
    assert.ok(Math.abs(w.reduce((a, b) => a + b) - 4) < 1e-12);
    assert.throws(() => inverseFrequencyWeights([3, 0]), /class 1 has 0 training images/);
  });

  it('effective-number weights match (1-b)/(1-b^n) normalised, and b=0 gives ones', () => {
    // Hand numbers for b = 0.9: raw = 0.1/(1-0.9^n) for n = 1, 2 → 1, 0.526316; normalised to sum 2.
    const w = effectiveNumberWeights([1, 2], 0.9);
    assert.ok(Math.abs(w[0] - 2 / (1 + 0.1 / 0.19)) < 1e-12);
    assert.ok(Math.abs(w[1] - (2 * (0.1 / 0.19)) / (1 + 0.1 / 0.19)) < 1e-12);
    assert.deepEqual(effectiveNumberWeights(counts, 0), [1, 1, 1, 1]);
  });

  it('each method trains the right variant on the right batches', () => {
    assert.deepEqual(
      ['bbn', 'ce', 'rw', 'rs', 'drw', 'decouple'].map((m) => {
        const p = epochPolicy(cfg(m), 1, counts);
        return [m, p.variant, p.batchSource, p.rebalance, p.classWeights === null, p.trainable];
      }),
      [
        ['bbn', 'bbn', 'uniform', 'reversed', true, 'all'],
        ['ce', 'single', 'uniform', 'none', true, 'all'],
        ['rw', 'single', 'uniform', 'none', false, 'all'],
        ['rs', 'single', 'balanced', 'none', true, 'all'],
        ['drw', 'single', 'uniform', 'none', true, 'all'],
        ['decouple', 'single', 'uniform', 'none', true, 'all'],
      ],
    );
  });

  it('DRW switches to class-balanced weights at drwStartEpoch', () => {
    const c = cfg('drw', { drwStartEpoch: 8 });
    assert.equal(epochPolicy(c, 7, counts).classWeights, null);
    assert.deepEqual(epochPolicy(c, 8, counts).classWeights, effectiveNumberWeights(counts, 0.9999));
  });

  it('decoupling adds a classifier-only, class-balanced stage after the CE epochs', () => {
    const c = cfg('decouple', { decoupleEpochs: 3 });
    assert.equal(totalEpochs(c), 13);
    assert.equal(epochPolicy(c, 10, counts).stage, 1);
    const first = epochPolicy(c, 11, counts);
    assert.deepEqual(
      [first.stage, first.trainable, first.batchSource, first.resetClassifier],
      [2, 'classifier', 'balanced', true],
    );
    assert.equal(epochPolicy(c, 12, counts).resetClassifier, false);
    assert.throws(() => epochPolicy(c, 14, counts), /epoch \(14\) must be an integer in \[1, 13\]/);
  });

  it('decoupling learns its representation and retrains its classifier as the chosen methods', () => {
    for (const rep of ['ce', 'rw', 'rs'] as const) {
      for (const cls of ['ce', 'rw', 'rs'] as const) {
        const c = cfg('decouple', {
          decoupleEpochs: 2,
          decoupleRepresentation: rep,
          decoupleClassifier: cls,
        });
        // Stage 1 is the representation method's own policy, epoch for epoch.
        for (let e = 1; e <= 10; e++)
          assert.deepEqual(epochPolicy(c, e, counts), epochPolicy(cfg(rep), e, counts));
        const alone = epochPolicy(cfg(cls), 1, counts);
        const p = epochPolicy(c, 11, counts);
        assert.deepEqual(
          [p.stage, p.trainable, p.resetClassifier, p.batchSource, p.classWeights],
          [2, 'classifier', true, alone.batchSource, alone.classWeights],
          `${rep} → ${cls}`,
        );
      }
    }
    assert.deepEqual(
      epochPolicy(cfg('decouple', { decoupleClassifier: 'rw' }), 11, counts).classWeights,
      inverseFrequencyWeights(counts),
    );
    assert.throws(() => cfg('decouple', { decoupleClassifier: 'drw' }), /decoupleClassifier/);
  });
});
