import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/rng.ts';
import { createModel } from '../../src/model/factory.ts';
import { forEachBackend, probeBackends } from './backends.ts';
import { maxAbs, maxAbsDiff, randomBatch, TINY_BBN } from './fixtures.ts';

// Every backend but cpu is compared against cpu (the reference kernels).
const backends = (await probeBackends(['tensorflow'])).filter((b) => b.name !== 'cpu');

const U = randomBatch(TINY_BBN, 4, 'xu');
const R = randomBatch(TINY_BBN, 4, 'xr');
const batch = { xu: U.x, yu: U.y, xr: R.x, yr: R.y };

/** Initial params, step result, buffers after it and eval logits, on the current backend. */
function runOn(): {
  params: Float32Array;
  loss: number;
  grads: Float32Array;
  buffers: Float32Array;
  logits: Float32Array;
} {
  const m = createModel(TINY_BBN, Rng.fromSeed(11));
  const params = m.getParams();
  const r = m.step(batch, 0.6);
  const out = { params, loss: r.loss, grads: r.grads, buffers: m.getBuffers(), logits: m.predict(U.x) };
  m.dispose();
  return out;
}

forEachBackend(backends, 'same model as on cpu', (name) => {
  it('identical initial parameters, and step/eval results within float32 tolerance', async () => {
    const here = runOn();
    await tf.setBackend('cpu');
    let ref: ReturnType<typeof runOn>;
    try {
      ref = runOn();
    } finally {
      await tf.setBackend(name);
    }
    assert.deepEqual(here.params, ref.params);
    assert.ok(Math.abs(here.loss - ref.loss) < 1e-5);
    assert.ok(
      maxAbsDiff(here.grads, ref.grads) <= 1e-4 * maxAbs(ref.grads),
      `grads ${maxAbsDiff(here.grads, ref.grads)}`,
    );
    assert.ok(maxAbsDiff(here.buffers, ref.buffers) <= 1e-5 * maxAbs(ref.buffers));
    assert.ok(maxAbsDiff(here.logits, ref.logits) <= 1e-4);
  });
});
