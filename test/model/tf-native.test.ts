/**
 * TensorFlow's fused BatchNorm (train and eval mode) and ReluGrad (src/model/tf-native.ts) against
 * a float64 evaluation of the same functions (eval mode: the output): output, the recorded batch mean and unbiased variance, and
 * the gradients of Σ y·dy with respect to x, γ and β. (The whole BBN step on TensorFlow against
 * the cpu backend's composite kernels is test/model/cross-backend.test.ts.)
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/rng.ts';
import { selectBackend } from '../../src/model/backend.ts';
import { fusedBatchNormInfer, fusedBatchNormTrain, nativeTf, reluGrad } from '../../src/model/tf-native.ts';

const [N, H, W, C] = [3, 4, 5, 6];
const EPS = 1e-5;

/** Largest |a − b| over max(1, |b|), elementwise. */
function worstRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++)
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  return worst;
}

/** Float64 train-mode BN over the last axis: y, batch mean, unbiased variance, and the gradients of Σ y·dy. */
function reference(x: Float32Array, g: Float32Array, b: Float32Array, dy: Float32Array) {
  const n = x.length / C;
  const mean = new Float64Array(C);
  const varB = new Float64Array(C);
  for (let i = 0; i < x.length; i++) mean[i % C] += x[i] / n;
  for (let i = 0; i < x.length; i++) varB[i % C] += (x[i] - mean[i % C]) ** 2 / n;
  const inv = Array.from(varB, (v) => 1 / Math.sqrt(v + EPS));
  const xhat = Array.from(x, (v, i) => (v - mean[i % C]) * inv[i % C]);
  const y = xhat.map((v, i) => v * g[i % C] + b[i % C]);
  const dbeta = new Float64Array(C);
  const dgamma = new Float64Array(C);
  for (let i = 0; i < x.length; i++) {
    dbeta[i % C] += dy[i];
    dgamma[i % C] += dy[i] * xhat[i];
  }
  const dx = xhat.map((v, i) => {
    const c = i % C;
    return g[c] * inv[c] * (dy[i] - dbeta[c] / n - (v * dgamma[c]) / n);
  });
  return { y, mean, varU: Array.from(varB, (v) => (v * n) / (n - 1)), dx, dgamma, dbeta };
}

describe('TensorFlow fused training kernels (tf-native.ts)', () => {
  before(async () => {
    await selectBackend('tensorflow');
  });

  it('the fused BatchNorm: output, recorded statistics and gradients match float64 within 1e-5', () => {
    const t = nativeTf();
    assert.ok(t, 'the TensorFlow backend is active');
    const rng = Rng.fromSeed('tf-native');
    const rand = (len: number, scale: number, shift = 0) =>
      Float32Array.from({ length: len }, () => shift + scale * rng.normal());
    const x = rand(N * H * W * C, 3, 1.5);
    const g = rand(C, 0.5, 1);
    const b = rand(C, 0.5);
    const dy = rand(N * H * W * C, 1);
    const ref = reference(x, g, b, dy);
    const before = tf.memory().numTensors;
    const recorded: tf.Tensor1D[] = [];
    const got = tf.tidy(() => {
      const xt = tf.tensor4d(x, [N, H, W, C]);
      const gt = tf.tensor1d(g);
      const bt = tf.tensor1d(b);
      const f = (xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor) =>
        fusedBatchNormTrain(t, xi as tf.Tensor4D, gi as tf.Tensor1D, bi as tf.Tensor1D, EPS, (m, v) => {
          recorded.push(tf.keep(m.clone()), tf.keep(v.clone()));
        });
      const y = f(xt, gt, bt);
      const [dx, dg, db] = tf.grads((xi, gi, bi) =>
        tf.sum(tf.mul(f(xi, gi, bi), tf.tensor4d(dy, [N, H, W, C]))),
      )([xt, gt, bt]);
      return [y, recorded[0], recorded[1], dx, dg, db].map((v) => v.dataSync() as Float32Array);
    });
    // The forward pass ran twice (once plain, once under grads): two recordings, kept by `record`.
    assert.equal(recorded.length, 4);
    tf.dispose(recorded);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
    const [y, mean, varU, dx, dg, db] = got;
    const errors = {
      y: worstRel(y, ref.y),
      mean: worstRel(mean, ref.mean),
      varUnbiased: worstRel(varU, ref.varU),
      dx: worstRel(dx, ref.dx),
      dgamma: worstRel(dg, ref.dgamma),
      dbeta: worstRel(db, ref.dbeta),
    };
    for (const [name, e] of Object.entries(errors)) assert.ok(e < 1e-5, `${name}: ${e}`);
  });

  it('the fused eval-mode BatchNorm is (x − running mean)/√(running var + eps)·γ + β within 1e-6', () => {
    const t = nativeTf();
    assert.ok(t);
    const rng = Rng.fromSeed('tf-native-eval');
    const rand = (len: number, scale: number, shift = 0) =>
      Float32Array.from({ length: len }, () => shift + scale * rng.normal());
    const x = rand(N * H * W * C, 3, 1.5);
    const g = rand(C, 0.5, 1);
    const b = rand(C, 0.5);
    const mean = rand(C, 1);
    const variance = Float32Array.from(rand(C, 1), (v) => 0.1 + v * v);
    const before = tf.memory().numTensors;
    const y = tf.tidy(() =>
      fusedBatchNormInfer(
        t,
        tf.tensor4d(x, [N, H, W, C]),
        tf.tensor1d(g),
        tf.tensor1d(b),
        tf.tensor1d(mean),
        tf.tensor1d(variance),
        EPS,
      ).dataSync(),
    );
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
    const ref = Array.from(x, (v, i) => {
      const c = i % C;
      return ((v - mean[c]) / Math.sqrt(variance[c] + EPS)) * g[c] + b[c];
    });
    const e = worstRel(y, ref);
    assert.ok(e < 1e-6, `worst relative error ${e}`);
  });

  it('ReluGrad is dy where the ReLU output is positive, ±0 elsewhere', () => {
    const t = nativeTf();
    assert.ok(t);
    const y = [0, 1.5, 0, 2, 0.25, 0];
    const dy = [3, -2, -1, 4, 5, 6];
    const got = tf.tidy(() => reluGrad(t, tf.tensor1d(dy), tf.tensor1d(y)).dataSync());
    // (A zero keeps dy's sign: TensorFlow multiplies by the mask, as the composite does.)
    assert.deepEqual(
      Array.from(got, (v) => v + 0),
      [0, -2, 0, 4, 5, 0],
    );
  });
});
