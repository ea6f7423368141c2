import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/rng.ts';
import { selectBackend } from '../../src/model/backend.ts';
import { createModel } from '../../src/model/factory.ts';
import { maxAbs, maxAbsDiff, randomBatch, TINY_BBN } from './fixtures.ts';

const U = randomBatch(TINY_BBN, 4, 'xu');
const R = randomBatch(TINY_BBN, 4, 'xr');

/** Initial params, one BBN step (loss, gradients, BN buffers after it) and eval logits, on the current backend. */
function runOn() {
  const m = createModel(TINY_BBN, Rng.fromSeed(11));
  const params = m.getParams();
  const first = m.step({ xu: U.x, yu: U.y, xr: R.x, yr: R.y }, 0.6);
  const out = {
    params,
    loss: first.loss,
    grads: first.grads,
    buffers: m.getBuffers(),
    logits: m.predict(U.x),
  };
  m.dispose();
  return out;
}

describe('BBN step on wasm (with the training kernels selectBackend registers)', () => {
  it('matches the cpu reference kernels within float32 tolerance, and leaks no tensors', async () => {
    await tf.setBackend('cpu');
    const ref = runOn();
    const info = await selectBackend('wasm', { threads: 1 });
    assert.equal(info.name, 'wasm');
    assert.match(info.reason, /training kernels/);
    const before = tf.memory().numTensors;
    const here = runOn();
    assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
    await tf.setBackend('cpu');
    assert.deepEqual(here.params, ref.params, 'identical initialisation');
    assert.ok(Math.abs(here.loss - ref.loss) < 1e-5, `loss ${here.loss} vs ${ref.loss}`);
    const gradErr = maxAbsDiff(here.grads, ref.grads) / maxAbs(ref.grads);
    assert.ok(gradErr <= 1e-4, `gradient relative error ${gradErr}`);
    assert.ok(maxAbsDiff(here.buffers, ref.buffers) <= 1e-5 * maxAbs(ref.buffers));
    assert.ok(maxAbsDiff(here.logits, ref.logits) <= 1e-4);
  });
});
