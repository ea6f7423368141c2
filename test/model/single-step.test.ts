import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/rng.ts';
import { createModel } from '../../src/model/factory.ts';
import { forEachBackend, probeBackends } from './backends.ts';
import { maxAbs, maxAbsDiff, randomBatch, TINY_SINGLE } from './fixtures.ts';

const backends = await probeBackends(['cpu', 'tensorflow']);

const B = randomBatch(TINY_SINGLE, 6, 'single');

forEachBackend(backends, 'single-branch step', () => {
  it('all: gradient everywhere, BN statistics updated once per step, parameters unchanged', () => {
    const m = createModel(TINY_SINGLE, Rng.fromSeed(2));
    const p = m.getParams();
    const r = m.step(B);
    assert.ok(r.loss > 0 && r.count === 6);
    const layout = m.layout();
    for (const e of layout) assert.ok(maxAbs(r.grads.subarray(e.offset, e.offset + e.size)) > 0, e.name);
    for (const n of m.bnBatchesTracked().values()) assert.equal(n, 1);
    assert.deepEqual(m.getParams(), p);
    m.dispose();
  });

  it('classifier: loss equals PyTorch weighted CE on eval-mode logits; backbone gradient is zero', () => {
    const m = createModel(TINY_SINGLE, Rng.fromSeed(2));
    const w = [0.5, 2, 4];
    const r = m.step(B, { trainable: 'classifier', classWeights: w });
    const logits = m.predict(B.x);
    let num = 0;
    let den = 0;
    for (let i = 0; i < 6; i++) {
      const row = Array.from(logits.subarray(i * 3, i * 3 + 3));
      const ce = Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[B.y[i]];
      num += w[B.y[i]] * ce;
      den += w[B.y[i]];
    }
    assert.ok(Math.abs(r.loss - num / den) < 1e-5, `${r.loss} vs ${num / den}`);
    const { offset } = m.classifierRange();
    assert.ok(r.grads.subarray(0, offset).every((v) => v === 0));
    assert.ok(maxAbs(r.grads.subarray(offset)) > 0);
    m.dispose();
  });

  it('uniform class weights leave the loss and gradient unchanged (they cancel in Σ w·ce / Σ w)', () => {
    const a = createModel(TINY_SINGLE, Rng.fromSeed(3));
    const b = createModel(TINY_SINGLE, Rng.fromSeed(3));
    const ra = a.step(B);
    const rb = b.step(B, { classWeights: [3, 3, 3] });
    assert.ok(Math.abs(ra.loss - rb.loss) < 1e-6);
    assert.ok(maxAbsDiff(ra.grads, rb.grads) <= 1e-5 * maxAbs(ra.grads));
    a.dispose();
    b.dispose();
  });

  it('keeps the tensor count flat over steps', () => {
    const m = createModel(TINY_SINGLE, Rng.fromSeed(2));
    m.step(B);
    const n0 = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) m.step(B, { trainable: i % 2 ? 'classifier' : 'all' });
    assert.equal(tf.memory().numTensors, n0);
    m.dispose();
  });
});
