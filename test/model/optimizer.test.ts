import assert from 'node:assert/strict';
import { it } from 'node:test';
import { OptimizerError, Sgd } from '../../src/model/optimizer.ts';

const GRADS = [
  [0.1, 0.2, -0.3],
  [-0.2, 0.1, 0.0],
  [0.05, -0.4, 0.3],
];
const LRS = [0.1, 0.1, 0.05];

function close(got: ArrayLike<number>, want: number[], tol = 1e-6): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++)
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `[${i}] ${got[i]} vs ${want[i]}`);
}

it('Nesterov SGD with weight decay matches a hand-computed 3-step PyTorch example', () => {
  // Step 1 by hand: d = g + 0.01·p = [0.11, 0.18, −0.295]; buf = d; p −= 0.1·(d + 0.9·buf) = 0.1·1.9·d.
  const p = Float32Array.from([1, -2, 0.5]);
  const opt = new Sgd(3, { momentum: 0.9, nesterov: true, weightDecay: 0.01 });
  const want = [
    { p: [0.9791, -2.0342, 0.55605], buf: [0.11, 0.18, -0.295] },
    { p: [1.00632971, -2.06391502, 0.578888505], buf: [-0.091209, 0.241658, -0.2599395] },
    {
      p: [1.0043176612755, -2.033741449731, 0.56036611067025],
      buf: [-0.0220248029, -0.2031469502, 0.07184333505],
    },
  ];
  GRADS.forEach((g, k) => {
    opt.step(p, Float32Array.from(g), LRS[k]);
    close(p, want[k].p);
    close(opt.getState().momentum, want[k].buf);
  });
});

it('classic momentum (nesterov false) uses p −= lr·buf', () => {
  const p = Float32Array.from([1, -2, 0.5]);
  const opt = new Sgd(3, { nesterov: false, weightDecay: 0.01 });
  GRADS.forEach((g, k) => {
    opt.step(p, Float32Array.from(g), LRS[k]);
  });
  close(p, [0.9992118945, -2.032042809, 0.55195196475]);
});

it('a range restricts the update (decoupling: classifier only); weight decay applies only there', () => {
  const p = Float32Array.from([1, -2, 0.5, 4]);
  const opt = new Sgd(4, { weightDecay: 0.01, range: { offset: 1, length: 2 } });
  opt.step(p, Float32Array.from([9, 0.2, -0.3, 9]), 0.1);
  assert.equal(p[0], 1);
  assert.equal(p[3], 4);
  close(p.subarray(1, 3), [-2.0342, 0.55605]);
  assert.equal(opt.getState().momentum.length, 2);
});

it('state round trip: a restored optimizer continues identically (momentum buffer and first-step flag)', () => {
  const a = new Sgd(3, { weightDecay: 0.01 });
  const pa = Float32Array.from([1, -2, 0.5]);
  a.step(pa, Float32Array.from(GRADS[0]), 0.1);
  const afterFirst = pa.slice();
  const saved = a.getState();
  const b = new Sgd(3, { weightDecay: 0.01 });
  b.setState(saved);
  const pb = pa.slice();
  a.step(pa, Float32Array.from(GRADS[1]), 0.1);
  b.step(pb, Float32Array.from(GRADS[1]), 0.1);
  assert.deepEqual(pb, pa);
  // A fresh optimizer (no buffer yet) takes buf = g, which differs from continuing.
  const c = new Sgd(3, { weightDecay: 0.01 });
  const pc = afterFirst.slice();
  c.step(pc, Float32Array.from(GRADS[1]), 0.1);
  assert.notDeepEqual(pc, pa);
  assert.equal(saved.started, true);
  assert.throws(() => b.setState({ ...saved, size: 4 }), OptimizerError);
});

it('rejects bad arguments with OptimizerError naming the value', () => {
  assert.throws(() => new Sgd(3, { momentum: 0, nesterov: true }), /nesterov needs momentum/);
  assert.throws(() => new Sgd(3, { range: { offset: 2, length: 2 } }), /range/);
  assert.throws(() => new Sgd(3).step(new Float32Array(3), new Float32Array(2), 0.1), /grads \(2\)/);
  assert.throws(() => new Sgd(3).step(new Float32Array(3), new Float32Array(3), Number.NaN), /lr \(NaN\)/);
});
