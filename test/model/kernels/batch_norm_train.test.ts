/**
 * batchNormTrain (one op with its own gradient) against the tfjs composite it replaces
 * (`tf.moments` + `tf.batchNorm`): outputs, statistics and the gradients of x, gamma and beta, on
 * cpu, tensorflow (where tfjs-node loads) and wasm with the training kernels.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { Rng } from '../../../src/core/rng.ts';
import { BatchNormTrainError, batchNormTrain } from '../../../src/model/kernels/batch_norm_train.ts';
import { setupWasmBackend } from '../../../src/model/wasm-backend.ts';
import { forEachBackend, probeBackends } from '../backends.ts';
import { randomTensorData } from './helpers.ts';

const EPS = 1e-5;

interface Outcome {
  readonly y: number[];
  readonly mean: number[];
  readonly variance: number[];
  readonly dx: number[];
  readonly dgamma: number[];
  readonly dbeta: number[];
}

/** Forward and gradients of `sum(y · r)` with either implementation, on the active backend. */
function evaluate(shape: number[], seed: string, fused: boolean): Outcome {
  const rng = Rng.fromSeed(seed);
  const c = shape[shape.length - 1];
  const xd = randomTensorData(rng, shape);
  const gd = randomTensorData(rng, [c]);
  const bd = randomTensorData(rng, [c]);
  const rd = randomTensorData(rng, shape);
  return tf.tidy(() => {
    const x = xd.make();
    const gamma = gd.make() as tf.Tensor1D;
    const beta = bd.make() as tf.Tensor1D;
    const r = rd.make();
    const axes = shape.slice(0, -1).map((_, i) => i);
    const forward = (xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      if (fused) return batchNormTrain(xi, g as tf.Tensor1D, b as tf.Tensor1D, EPS);
      const { mean, variance } = tf.moments(xi, axes);
      const y = tf.batchNorm(xi, mean, variance, b as tf.Tensor1D, g as tf.Tensor1D, EPS);
      return { y, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
    };
    const out = forward(x, gamma, beta);
    const [dx, dgamma, dbeta] = tf.grads((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(forward(xi, g, b).y, r)),
    )([x, gamma, beta]);
    const arr = (t: tf.Tensor) => Array.from(t.dataSync());
    return {
      y: arr(out.y),
      mean: arr(out.mean),
      variance: arr(out.variance),
      dx: arr(dx),
      dgamma: arr(dgamma),
      dbeta: arr(dbeta),
    };
  });
}

function assertClose(got: number[], want: number[], what: string, rel: number): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  assert.ok(worst <= rel * Math.max(scale, 1e-6), `${what}: max |diff| ${worst} vs scale ${scale}`);
}

function assertSameOutcome(got: Outcome, want: Outcome, label: string): void {
  for (const k of ['y', 'mean', 'variance', 'dx', 'dgamma', 'dbeta'] as const) {
    assertClose(got[k], want[k], `${label} ${k}`, 1e-4);
  }
}

const SHAPES: number[][] = [
  [2, 5, 5, 8],
  [6, 8],
  [4, 3, 3, 16],
];

const backends = await probeBackends(['cpu', 'tensorflow']);

forEachBackend(backends, 'batchNormTrain', (backend) => {
  it(`matches moments + batchNorm in values and gradients on ${backend}`, () => {
    for (const shape of SHAPES) {
      const seed = `bn-${shape}`;
      assertSameOutcome(evaluate(shape, seed, true), evaluate(shape, seed, false), `${backend} ${shape}`);
    }
  });

  it('frees everything but its results', () => {
    const before = tf.memory().numTensors;
    evaluate([2, 4, 4, 8], 'leak', true);
    assert.equal(tf.memory().numTensors, before);
  });

  it('rejects gamma and beta that are not one value per channel, naming the shapes', () => {
    const x = tf.zeros([2, 3, 4]);
    const g = tf.ones([3]);
    assert.throws(
      () => batchNormTrain(x, g as tf.Tensor1D, g as tf.Tensor1D, EPS),
      (e: unknown) => {
        assert.ok(e instanceof BatchNormTrainError);
        assert.match(e.message, /x 2,3,4, gamma 3, beta 3/);
        return true;
      },
    );
    tf.dispose([x, g]);
  });
});

describe('batchNormTrain [wasm with training kernels]', () => {
  it('matches the cpu composite in values and gradients', async () => {
    await setupWasmBackend({ threads: 1 });
    for (const shape of SHAPES) {
      const seed = `bn-wasm-${shape}`;
      await tf.setBackend('cpu');
      const want = evaluate(shape, seed, false);
      await tf.setBackend('wasm');
      assertSameOutcome(evaluate(shape, seed, true), want, `wasm ${shape}`);
    }
  });
});
