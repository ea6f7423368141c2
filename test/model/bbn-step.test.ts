import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/rng.ts';
import type { BbnModel, LayoutEntry } from '../../src/model/api.ts';
import { ceNormalizer, mixFeatures } from '../../src/model/combiner.ts';
import { createModel } from '../../src/model/factory.ts';
import { linear } from '../../src/model/layers.ts';
import { forEachBackend, probeBackends } from './backends.ts';
import { maxAbs, maxAbsDiff, randomBatch, TINY_BBN } from './fixtures.ts';

const backends = await probeBackends(['cpu', 'tensorflow']);

const N = 4;
const U = randomBatch(TINY_BBN, N, 'uniform');
const R = randomBatch(TINY_BBN, N, 'reversed');
const batch = { xu: U.x, yu: U.y, xr: R.x, yr: R.y };

function bbn(seed = 1): BbnModel {
  return createModel({ ...TINY_BBN, variant: 'bbn' }, Rng.fromSeed(seed));
}

/** Flat ranges of the parameters whose names start with `prefix`. */
function rangeOf(layout: LayoutEntry[], prefix: string): [number, number] {
  const es = layout.filter((e) => e.name.startsWith(prefix));
  assert.ok(es.length > 0, prefix);
  return [es[0].offset, es[es.length - 1].offset + es[es.length - 1].size];
}

function entry(layout: LayoutEntry[], name: string): LayoutEntry {
  const e = layout.find((l) => l.name === name);
  assert.ok(e, name);
  return e;
}

/** Per-channel mean and unbiased variance (float64) of a row-major [..., C] array. */
function channelStats(v: Float32Array, c: number): { mean: number[]; varU: number[] } {
  const n = v.length / c;
  const mean = Array(c).fill(0);
  const sq = Array(c).fill(0);
  for (let i = 0; i < v.length; i++) mean[i % c] += v[i] / n;
  for (let i = 0; i < v.length; i++) sq[i % c] += (v[i] - mean[i % c]) ** 2;
  return { mean, varU: sq.map((s) => s / (n - 1)) };
}

forEachBackend(backends, 'BBN step', () => {
  it('returns loss, accuracy and a flat gradient without changing the parameters', () => {
    const m = bbn();
    const before = m.getParams();
    const r = m.step(batch, 0.7);
    assert.equal(r.grads.length, m.numParams);
    assert.equal(r.count, N);
    assert.ok(Number.isFinite(r.loss) && r.loss > 0);
    assert.ok(r.accuracy >= 0 && r.accuracy <= 1);
    assert.ok(Math.abs(r.correct - r.accuracy * N) < 1e-9);
    assert.ok(maxAbs(r.grads) > 0);
    assert.deepEqual(m.getParams(), before);
    m.dispose();
  });

  it('updates trunk BN statistics twice per step (uniform, then reversed) and cb/rb once each (§9.11)', () => {
    const m = bbn();
    const params = m.getParams();
    m.step(batch, 0.6);
    const counts = m.bnBatchesTracked();
    for (const [name, n] of counts) {
      const want = name.includes('cb_block') || name.includes('rb_block') ? 1 : 2;
      assert.equal(n, want, name);
    }
    // Stem BN: running = 0.9·(0.9·init + 0.1·batch_u) + 0.1·batch_r, with the unbiased variance.
    const layout = m.layout();
    const w = entry(layout, 'backbone.conv1.weight');
    const [h, wd, c] = TINY_BBN.inputShape;
    const conv = (x: Float32Array) =>
      tf.tidy(() =>
        tf
          .conv2d(
            tf.tensor4d(x, [N, h, wd, c]),
            tf.tensor4d(
              params.slice(w.offset, w.offset + w.size),
              w.shape as [number, number, number, number],
            ),
            1,
            'same',
          )
          .dataSync(),
      ) as Float32Array;
    const cout = w.shape[3];
    const su = channelStats(conv(U.x), cout);
    const sr = channelStats(conv(R.x), cout);
    const buf = m.getBuffers();
    const bl = m.bufferLayout();
    const rm = entry(bl, 'backbone.bn1.running_mean');
    const rv = entry(bl, 'backbone.bn1.running_var');
    for (let k = 0; k < cout; k++) {
      const em = 0.9 * (0.9 * 0 + 0.1 * su.mean[k]) + 0.1 * sr.mean[k];
      const ev = 0.9 * (0.9 * 1 + 0.1 * su.varU[k]) + 0.1 * sr.varU[k];
      assert.ok(
        Math.abs(buf[rm.offset + k] - em) < 1e-5,
        `running_mean[${k}] ${buf[rm.offset + k]} vs ${em}`,
      );
      assert.ok(Math.abs(buf[rv.offset + k] - ev) < 1e-4, `running_var[${k}] ${buf[rv.offset + k]} vs ${ev}`);
    }
    m.dispose();
  });

  it('cb_block BN sees only the uniform batch and rb_block BN only the reversed one', () => {
    const a = bbn();
    const b = bbn();
    const other = randomBatch(TINY_BBN, N, 'other');
    a.step(batch, 0.5);
    b.step({ ...batch, xr: other.x, yr: other.y }, 0.5);
    const bl = a.bufferLayout();
    const [ba, bb] = [a.getBuffers(), b.getBuffers()];
    const slice = (buf: Float32Array, p: string) => {
      const [s, e] = rangeOf(bl, p);
      return buf.subarray(s, e);
    };
    assert.deepEqual(slice(ba, 'backbone.cb_block'), slice(bb, 'backbone.cb_block'));
    assert.ok(maxAbsDiff(slice(ba, 'backbone.rb_block'), slice(bb, 'backbone.rb_block')) > 0);
    assert.ok(maxAbsDiff(slice(ba, 'backbone.bn1'), slice(bb, 'backbone.bn1')) > 0);
    a.dispose();
    b.dispose();
  });

  it('gives rb_block exactly zero gradient at α = 1 and cb_block at α = 0', () => {
    const m = bbn();
    const layout = m.layout();
    const [cb0, cb1] = rangeOf(layout, 'backbone.cb_block');
    const [rb0, rb1] = rangeOf(layout, 'backbone.rb_block');
    const g1 = m.step(batch, 1).grads;
    assert.ok(
      g1.subarray(rb0, rb1).every((v) => v === 0),
      'rb at α=1',
    );
    assert.ok(maxAbs(g1.subarray(cb0, cb1)) > 0);
    const g0 = m.step(batch, 0).grads;
    assert.ok(
      g0.subarray(cb0, cb1).every((v) => v === 0),
      'cb at α=0',
    );
    assert.ok(maxAbs(g0.subarray(rb0, rb1)) > 0);
    m.dispose();
  });

  it('matches central finite differences of its own loss along per-tensor directions', () => {
    // No float64 in tfjs: the loss carries ~1e-7 relative rounding noise, which bounds the step
    // from below; ReLU kinks (a unit crossing zero inside ±ε) bound it from above. Measured on this
    // net: ε = 1e-2 is off by up to 50% near the stem from kinks, ε = 3e-4 agrees within 1.6% on
    // every tensor. So ε = 3e-4 along a unit direction, tolerance 2% + 3e-4 absolute (noise
    // ~1e-7/ε); a wrong sign, factor (e.g. the 2 in the mix) or dropped BN path is far outside it.
    const m = bbn(3);
    const alpha = 0.7;
    const p0 = m.getParams();
    const g = m.step(batch, alpha).grads.slice();
    const layout = m.layout();
    const names = [
      'backbone.conv1.weight',
      'backbone.bn1.weight',
      'backbone.layer2.0.conv1.weight',
      'backbone.cb_block.conv2.weight',
      'backbone.rb_block.bn1.bias',
      'classifier.weight',
      'classifier.bias',
    ];
    const rng = Rng.fromSeed('fd');
    const eps = 3e-4;
    for (const name of names) {
      const e = entry(layout, name);
      const gt = g.subarray(e.offset, e.offset + e.size);
      const gn = Math.hypot(...gt);
      assert.ok(gn > 0, `${name} has gradient`);
      // Direction: half along the gradient, half random, unit norm.
      const r = Array.from({ length: e.size }, () => rng.normal());
      const rn = Math.hypot(...r);
      const d = Array.from(gt, (v, i) => v / gn + r[i] / rn);
      const dn = Math.hypot(...d);
      const lossAt = (s: number) => {
        const p = p0.slice();
        for (let i = 0; i < e.size; i++) p[e.offset + i] += (s * d[i]) / dn;
        m.setParams(p);
        return m.step(batch, alpha).loss;
      };
      const fd = (lossAt(eps) - lossAt(-eps)) / (2 * eps);
      const an = d.reduce((a, v, i) => a + (v / dn) * gt[i], 0);
      assert.ok(
        Math.abs(fd - an) <= 0.02 * Math.abs(an) + 3e-4,
        `${name}: finite difference ${fd} vs gradient ${an}`,
      );
    }
    m.dispose();
  });

  it('normalizer scales the whole gradient: 2× the denominator halves every entry', () => {
    const m = bbn();
    const g = m.step(batch, 0.4).grads.slice();
    const m2 = bbn();
    const h = m2.step(batch, 0.4, { normalizer: 2 * N });
    const half = g.map((v) => v / 2);
    assert.ok(maxAbsDiff(h.grads, half) <= 1e-6 * maxAbs(g) + 1e-9);
    m.dispose();
    m2.dispose();
  });

  it('sharding: two half batches with the global normaliser sum to the full-batch gradient (frozen-BN classifier step)', () => {
    // With trainable 'classifier' the backbone runs in eval mode, so samples are independent (no BN
    // batch coupling) and the sum over shards must equal the global-batch gradient.
    const B2 = 8;
    const u = randomBatch(TINY_BBN, B2, 'u8');
    const r = randomBatch(TINY_BBN, B2, 'r8');
    const px = 8 * 8 * 3;
    const half = (x: Float32Array, y: Int32Array, k: number) => ({
      x: x.subarray(k * (B2 / 2) * px, (k + 1) * (B2 / 2) * px),
      y: y.subarray((k * B2) / 2, ((k + 1) * B2) / 2),
    });
    const weights = [0.2, 1.5, 3];
    for (const classWeights of [undefined, weights]) {
      const m = bbn();
      const full = m.step({ xu: u.x, yu: u.y, xr: r.x, yr: r.y }, 0.3, {
        trainable: 'classifier',
        classWeights,
      });
      const normalizer = {
        uniform: ceNormalizer(u.y, classWeights),
        reversed: ceNormalizer(r.y, classWeights),
      };
      const parts = [0, 1].map((k) => {
        const hu = half(u.x, u.y, k);
        const hr = half(r.x, r.y, k);
        return m.step({ xu: hu.x, yu: hu.y, xr: hr.x, yr: hr.y }, 0.3, {
          trainable: 'classifier',
          classWeights,
          normalizer,
        });
      });
      const sum = parts[0].grads.map((v, i) => v + parts[1].grads[i]);
      assert.ok(maxAbsDiff(sum, full.grads) <= 1e-6 * maxAbs(full.grads), `weights ${classWeights}`);
      assert.ok(Math.abs(parts[0].loss + parts[1].loss - full.loss) <= 1e-6 * full.loss);
      assert.equal(parts[0].correct + parts[1].correct, full.correct);
      m.dispose();
    }
  });

  it('trainable classifier: zero backbone gradient, no BN statistics change, same classifier gradient as eval-mode features', () => {
    const m = bbn();
    const buffers = m.getBuffers();
    const alpha = 0.8;
    const res = m.step(batch, alpha, { trainable: 'classifier' });
    const cr = m.classifierRange();
    assert.ok(res.grads.subarray(0, cr.offset).every((v) => v === 0));
    assert.deepEqual(m.getBuffers(), buffers);
    for (const n of m.bnBatchesTracked().values()) assert.equal(n, 0);
    // Recompute the classifier gradient from eval-mode features by hand.
    const fu = m.features(U.x);
    const fr = m.features(R.x);
    const p = m.getParams();
    const c = TINY_BBN.numClasses;
    const d2 = 2 * m.featureDim;
    const [gw, gb] = tf.tidy(() => {
      const t = tf.tensor2d(
        Array.from({ length: N }, (_, i) =>
          Array.from({ length: c }, (_, k) => (alpha * +(U.y[i] === k) + (1 - alpha) * +(R.y[i] === k)) / N),
        ),
      );
      const w = tf.tensor2d(p.slice(cr.offset, cr.offset + d2 * c), [d2, c]);
      const b = tf.tensor1d(p.slice(cr.offset + d2 * c));
      const mixed = mixFeatures(
        tf.tensor2d(fu.cb, [N, m.featureDim]),
        tf.tensor2d(fr.rb, [N, m.featureDim]),
        alpha,
      );
      const [a, bb] = tf.grads((ww: tf.Tensor, b2: tf.Tensor) =>
        tf.neg(tf.sum(tf.mul(t, tf.logSoftmax(linear(mixed, ww as tf.Tensor2D, b2 as tf.Tensor1D))))),
      )([w, b]);
      return [a.dataSync(), bb.dataSync()];
    });
    const got = res.grads.subarray(cr.offset);
    const want = Float32Array.from([...gw, ...gb]);
    assert.ok(maxAbsDiff(got, want) <= 1e-5, `classifier gradient differs by ${maxAbsDiff(got, want)}`);
    m.dispose();
  });

  it('keeps tensor count and bytes flat over 20 steps and over predict calls', () => {
    const m = bbn();
    const out = new Float32Array(m.numParams);
    m.step(batch, 0.5, { out });
    const t0 = tf.memory().numTensors;
    const b0 = tf.memory().numBytes;
    for (let i = 0; i < 20; i++) {
      const r = m.step(batch, i / 19, { out, trainable: i % 5 === 4 ? 'classifier' : 'all' });
      assert.equal(r.grads, out);
    }
    assert.equal(tf.memory().numTensors, t0);
    assert.equal(tf.memory().numBytes, b0);
    for (let i = 0; i < 5; i++) m.predict(U.x, 3);
    m.features(U.x, 3);
    m.evaluate(U.x, U.y);
    assert.equal(tf.memory().numTensors, t0);
    assert.equal(tf.memory().numBytes, b0);
    m.dispose();
    assert.ok(tf.memory().numTensors < t0);
  });

  it('frees its tensors when a step fails on bad input', () => {
    const m = bbn();
    const t0 = tf.memory().numTensors;
    assert.throws(() => m.step({ ...batch, yr: [0, 1, 2, 7] }, 0.5), /yr\[3\] \(7\)/);
    assert.throws(() => m.step({ ...batch, xr: R.x.subarray(1) }, 0.5), /multiple of h·w·c/);
    assert.throws(() => m.step(batch, -0.1), /alpha/);
    assert.equal(tf.memory().numTensors, t0);
    m.dispose();
  });
});
