import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/rng.ts';
import { type BbnModel, ModelError } from '../../src/model/api.ts';
import { argmaxRows, mixFeatures } from '../../src/model/combiner.ts';
import { createModel } from '../../src/model/factory.ts';
import { linear } from '../../src/model/layers.ts';
import { forEachBackend, probeBackends } from './backends.ts';
import { maxAbsDiff, randomBatch, TINY_BBN, TINY_SINGLE } from './fixtures.ts';

const backends = await probeBackends(['cpu', 'tensorflow']);

const U = randomBatch(TINY_BBN, 4, 'u');
const R = randomBatch(TINY_BBN, 4, 'r');
const X = randomBatch(TINY_BBN, 5, 'test');

/** A BBN model after two steps, so its BN running statistics are not the initial ones. */
function trained(seed = 1): BbnModel {
  const m = createModel({ ...TINY_BBN, variant: 'bbn' }, Rng.fromSeed(seed));
  m.step({ xu: U.x, yu: U.y, xr: R.x, yr: R.y }, 0.9);
  m.step({ xu: R.x, yu: R.y, xr: U.x, yr: U.y }, 0.4);
  return m;
}

forEachBackend(backends, 'inference and state', () => {
  it('eval logits equal classifier(2·cat(0.5·f_cb(x), 0.5·f_rb(x))) — the training formula at α = 0.5 (§9.8)', () => {
    const m = trained();
    const logits = m.predict(X.x);
    const { cb, rb } = m.features(X.x);
    const p = m.getParams();
    const { offset } = m.classifierRange();
    const d = m.featureDim;
    const c = TINY_BBN.numClasses;
    const want = tf.tidy(() => {
      const w = tf.tensor2d(p.slice(offset, offset + 2 * d * c), [2 * d, c]);
      const b = tf.tensor1d(p.slice(offset + 2 * d * c));
      const mixed = mixFeatures(tf.tensor2d(cb, [5, d]), tf.tensor2d(rb, [5, d]), 0.5);
      return linear(mixed, w, b).dataSync();
    });
    assert.ok(maxAbsDiff(logits, want) <= 1e-6, `differs by ${maxAbsDiff(logits, want)}`);
    // Features really are the two branches' (eval mode, running statistics): they differ.
    assert.ok(maxAbsDiff(cb, rb) > 0);
    m.dispose();
  });

  it('predict is independent of the batch size and evaluate reports argmax, top-1 and mean CE', () => {
    const m = trained();
    const a = m.predict(X.x, 5);
    const b = m.predict(X.x, 2);
    assert.ok(maxAbsDiff(a, b) <= 1e-6);
    const ev = m.evaluate(X.x, X.y, 3);
    assert.deepEqual(ev.predictions, argmaxRows(a, 3));
    const correct = ev.predictions.filter((p, i) => p === X.y[i]).length;
    assert.equal(ev.top1, correct / 5);
    let ce = 0;
    for (let i = 0; i < 5; i++) {
      const row = Array.from(a.subarray(i * 3, i * 3 + 3));
      ce += Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[X.y[i]];
    }
    assert.ok(Math.abs(ev.loss - ce / 5) < 1e-5);
    m.dispose();
  });

  it('getState/setState round trip is bitwise: params, buffers and predictions', () => {
    const a = trained(1);
    const state = a.getState();
    const b = createModel({ ...TINY_BBN, variant: 'bbn' }, Rng.fromSeed(99));
    assert.notDeepEqual(b.getParams(), state.params);
    b.setState(state);
    assert.deepEqual(b.getParams(), state.params);
    assert.deepEqual(b.getBuffers(), state.buffers);
    assert.deepEqual(b.predict(X.x), a.predict(X.x));
    // The state is a copy: changing it later does not touch either model.
    state.params.fill(0);
    assert.notDeepEqual(a.getParams(), state.params);
    // Buffers set from a flat array are copied too (the cpu backend keeps arrays by reference).
    const p = a.getParams();
    b.setParams(p);
    p[0] += 1;
    assert.notEqual(b.getParams()[0], p[0]);
    a.dispose();
    b.dispose();
  });

  it('refuses a state from another architecture or with wrong lengths, leaving the model unchanged', () => {
    const a = trained();
    const before = a.getParams();
    const other = createModel({ ...TINY_BBN, numClasses: 4 }, Rng.fromSeed(1));
    assert.throws(
      () => a.setState(other.getState()),
      (e: unknown) => e instanceof ModelError && /signature .*c4.* does not match .*c3/.test(e.message),
    );
    const single = createModel(TINY_SINGLE, Rng.fromSeed(1));
    assert.throws(() => a.setState(single.getState()), /another architecture/);
    const s = a.getState();
    assert.throws(() => a.setState({ ...s, buffers: s.buffers.subarray(1) }), /buffers/);
    assert.throws(() => a.setParams(new Float32Array(3)), /length 3/);
    assert.deepEqual(a.getParams(), before);
    assert.match(a.signature, /^bbn-resnet_cifar-d14-w2-c3-in8x8x3#[0-9a-f]{16}$/);
    for (const m of [a, other, single]) m.dispose();
  });

  it('a disposed model refuses further use and frees its variables', () => {
    const n0 = tf.memory().numTensors;
    const m = createModel(TINY_SINGLE, Rng.fromSeed(1));
    assert.ok(tf.memory().numTensors > n0);
    m.dispose();
    assert.equal(tf.memory().numTensors, n0);
    assert.throws(() => m.predict(X.x), /disposed/);
  });
});
