import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { ModelError } from '../../src/model/api.ts';
import {
  argmaxRows,
  bbnTargets,
  ceNormalizer,
  ceTargets,
  countCorrect,
  mixFeatures,
  softTargetCrossEntropy,
} from '../../src/model/combiner.ts';
import { linear } from '../../src/model/layers.ts';
import { forEachBackend, probeBackends } from './backends.ts';

const backends = await probeBackends(['cpu', 'tensorflow']);

// BBN-SPEC §9.7: D = 2, C = 2, W rows = classes over [f_c | f_r]; our weight is its transpose [2D, C].
const W_T = [
  [1, 0],
  [0, 0],
  [0, 0],
  [0, 1],
];
const B = [0.1, -0.1];

/** Loss, accuracy, logits, dL/dz and dL/df_c, dL/df_r of the combiner on the §9.7 setup. */
function combine(alpha: number) {
  return tf.tidy(() => {
    const fc = tf.tensor2d([[1, 0]]);
    const fr = tf.tensor2d([[0, 1]]);
    const w = tf.tensor2d(W_T);
    const b = tf.tensor1d(B);
    const t = tf.tensor2d(bbnTargets([0], [1], alpha, 2), [1, 2]);
    const lossOf = (a: tf.Tensor2D, r: tf.Tensor2D) =>
      softTargetCrossEntropy(linear(mixFeatures(a, r, alpha), w, b), t);
    const z = linear(mixFeatures(fc, fr, alpha), w, b);
    const dz = tf.grad((zz: tf.Tensor) => softTargetCrossEntropy(zz as tf.Tensor2D, t))(z);
    const [dfc, dfr] = tf.grads((a: tf.Tensor, r: tf.Tensor) => lossOf(a as tf.Tensor2D, r as tf.Tensor2D))([
      fc,
      fr,
    ]);
    const logits = z.dataSync();
    const pred = argmaxRows(logits, 2);
    return {
      loss: lossOf(fc, fr).dataSync()[0],
      acc: alpha * countCorrect(pred, [0]) + (1 - alpha) * countCorrect(pred, [1]),
      logits: Array.from(logits),
      dz: Array.from(dz.dataSync()),
      dfc: Array.from(dfc.dataSync()),
      dfr: Array.from(dfr.dataSync()),
    };
  });
}

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

forEachBackend(backends, 'combiner', () => {
  it('reproduces the §9.7 losses, accuracies and logits at α = 1, 0.75, 0.5, 0', () => {
    const table = [
      { alpha: 1, loss: 0.105083, acc: 1, z: [2.1, -0.1] },
      { alpha: 0.75, loss: 0.563282, acc: 0.75, z: [1.6, 0.4] },
      { alpha: 0.5, loss: 0.698139, acc: 0.5, z: [1.1, 0.9] },
      { alpha: 0, loss: 0.152978, acc: 1, z: [0.1, 1.9] },
    ];
    for (const row of table) {
      const r = combine(row.alpha);
      close(r.loss, row.loss);
      assert.equal(r.acc, row.acc, `acc at α=${row.alpha}`);
      r.logits.forEach((v, i) => {
        close(v, row.z[i]);
      });
    }
  });

  it('gives ∂L/∂z = [−0.099750, 0.099750] at α = 1 and exactly zero gradient into the idle branch', () => {
    const r1 = combine(1);
    close(r1.dz[0], -0.09975);
    close(r1.dz[1], 0.09975);
    assert.ok(
      r1.dfr.every((v) => v === 0),
      `rb feature gradient at α=1: ${r1.dfr}`,
    );
    assert.ok(r1.dfc.some((v) => v !== 0));
    const r0 = combine(0);
    assert.ok(
      r0.dfc.every((v) => v === 0),
      `cb feature gradient at α=0: ${r0.dfc}`,
    );
    assert.ok(r0.dfr.some((v) => v !== 0));
  });

  it('∂L/∂z = softmax(z) − (α·onehot(y_c) + (1−α)·onehot(y_r)) at every α', () => {
    for (const alpha of [0.75, 0.5, 0.3]) {
      const r = combine(alpha);
      const e = r.logits.map(Math.exp);
      const s = e[0] + e[1];
      close(r.dz[0], e[0] / s - alpha);
      close(r.dz[1], e[1] / s - (1 - alpha));
    }
  });

  it('class-weighted CE equals PyTorch cross_entropy(weight=w): Σ w_y·ce / Σ w_y', () => {
    const logits = [
      [2, 0.5, -1],
      [0.1, 0.2, 0.3],
      [-1, 3, 0],
      [0, 0, 0],
    ];
    const y = [0, 2, 1, 2];
    const w = [0.5, 2, 3];
    let num = 0;
    let den = 0;
    logits.forEach((row, i) => {
      const lse = Math.log(row.reduce((a, v) => a + Math.exp(v), 0));
      num += w[y[i]] * (lse - row[y[i]]);
      den += w[y[i]];
    });
    const got = tf.tidy(() =>
      softTargetCrossEntropy(
        tf.tensor2d(logits),
        tf.tensor2d(ceTargets(y, 3, { classWeights: w }), [4, 3]),
      ).dataSync(),
    )[0];
    close(got, num / den, 1e-5);
    assert.equal(ceNormalizer(y, w), den);
    assert.equal(ceNormalizer(y), 4);
  });
});

it('targets: a normaliser replaces the local denominator, per BBN term', () => {
  const t = bbnTargets([0, 1], [2, 2], 0.25, 3, { normalizer: { uniform: 4, reversed: 8 } });
  assert.deepEqual(Array.from(t), [0.25 / 4, 0, 0.75 / 8, 0, 0.25 / 4, 0.75 / 8].map(Math.fround));
  const d = bbnTargets([0, 1], [2, 2], 0.25, 3);
  assert.deepEqual(Array.from(d), [0.125, 0, 0.375, 0, 0.125, 0.375]);
});

it('targets: bad labels, α, weights or normaliser raise ModelError naming the value', () => {
  assert.throws(
    () => ceTargets([0, 3], 3),
    (e: unknown) => e instanceof ModelError && /y\[1\] \(3\)/.test(e.message),
  );
  assert.throws(() => bbnTargets([0], [0], 1.5, 3), /alpha \(1.5\)/);
  assert.throws(() => bbnTargets([0], [0, 1], 0.5, 3), /same size/);
  assert.throws(() => ceTargets([0], 3, { classWeights: [1, 1] }), /classWeights length \(2\)/);
  assert.throws(() => ceTargets([0], 3, { normalizer: 0 }), /normalizer \(0\)/);
});

it('argmaxRows picks the first maximum on ties, like PyTorch', () => {
  assert.deepEqual(Array.from(argmaxRows([1, 3, 3, 0, 0, 0], 3)), [1, 0]);
});
