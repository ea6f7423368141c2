import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { createModel } from '../../src/model/factory.ts';
import { classifierNorms, classifierWeightNorms } from '../../src/model/norms.ts';
import { TINY_BBN, TINY_SINGLE } from './fixtures.ts';

it('per-class norms of W_c, W_r and the whole row, with population std', () => {
  // [in = 2D = 4, C = 2] row-major; class 0 column = [3, 4, 0, 1], class 1 column = [0, 0, 2, 0].
  const w = Float32Array.from([3, 0, 4, 0, 0, 2, 1, 0]);
  const n = classifierWeightNorms(w, 2, 2);
  assert.deepEqual(Array.from(n.cb?.norms ?? []), [5, 0]);
  assert.deepEqual(Array.from(n.rb?.norms ?? []), [1, 2]);
  assert.deepEqual(Array.from(n.all.norms), [Math.sqrt(26), 2]);
  assert.equal(n.cb?.std, 2.5);
  assert.equal(n.rb?.mean, 1.5);
  assert.equal(n.rb?.std, 0.5);
  assert.throws(() => classifierWeightNorms(w, 2, 3), /branchDim \(3\)/);
});

it('reads the classifier of a model from its flat parameters', () => {
  const m = createModel(TINY_BBN, Rng.fromSeed(1));
  const n = classifierNorms(m);
  assert.equal(n.all.norms.length, 3);
  assert.ok(n.cb && n.rb);
  for (let c = 0; c < 3; c++) {
    assert.ok(Math.abs(n.all.norms[c] ** 2 - (n.cb.norms[c] ** 2 + n.rb.norms[c] ** 2)) < 1e-9);
  }
  const s = createModel(TINY_SINGLE, Rng.fromSeed(1));
  const ns = classifierNorms(s);
  assert.equal(ns.cb, undefined);
  assert.equal(ns.all.norms.length, 3);
  m.dispose();
  s.dispose();
});
