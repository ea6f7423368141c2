/**
 * First-step parity with the official BBN code (issue #19): one training step of this project's
 * BBN (α = 1, 0.5, 0) and CE model against the reference numbers of a PyTorch mirror of the
 * official code evaluated in float64 (test/model/fixtures/parity-step.json, made by
 * `npm run bench:parity:fixture`), per tensor: eval logits before and after the step, the loss,
 * every parameter's gradient, the BN running buffers, the SGD update (momentum, Nesterov, weight
 * decay). Goal: ≤ 1e-4 relative (‖ours − ref‖₂ / ‖ref‖₂) per tensor; the fixture also records
 * PyTorch's own float32 error against the same reference for scale.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import type { LayoutEntry } from '../../src/model/api.ts';
import { createModel } from '../../src/model/factory.ts';
import { Sgd } from '../../src/model/optimizer.ts';
import { forEachBackend, probeBackends } from './backends.ts';
import { fingerprint, PARITY_SGD, PARITY_SPEC, parityBatches, parityInitRng } from './parity-step.ts';

const TOL = 1e-4;

interface FixtureCase {
  variant: 'bbn' | 'single';
  alpha: number | null;
  loss: number;
  grads: Record<string, number[]>;
  buffers: Record<string, number[]>;
  logitsBefore: number[];
  update?: Record<string, number[]>;
  logitsAfter?: number[];
  torch32Rel: { grads: Record<string, number>; buffers: Record<string, number> };
}

const fixture = JSON.parse(readFileSync(new URL('./fixtures/parity-step.json', import.meta.url), 'utf8')) as {
  fingerprint: { inputs: [number, number]; bbn: [number, number]; single: [number, number] };
  cases: FixtureCase[];
};
const { u, r } = parityBatches();
const backends = await probeBackends(['cpu', 'tensorflow']);

/** ‖a − ref‖₂ / ‖ref‖₂; for an all-zero reference, max |a| (it must be zero too). */
function relErr(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  assert.equal(a.length, ref.length);
  let d = 0;
  let n = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - ref[i]) ** 2;
    n += ref[i] ** 2;
    m = Math.max(m, Math.abs(a[i]));
  }
  return n > 0 ? Math.sqrt(d / n) : m;
}

function checkTensors(
  what: string,
  layout: readonly LayoutEntry[],
  flat: Float32Array,
  ref: Record<string, number[]>,
): number {
  let worst = 0;
  assert.deepEqual(layout.map((e) => e.name).sort(), Object.keys(ref).sort(), `${what}: tensor names`);
  for (const e of layout) {
    const err = relErr(flat.subarray(e.offset, e.offset + e.size), ref[e.name]);
    assert.ok(err <= TOL, `${what} ${e.name}: relative error ${err.toExponential(2)} > ${TOL}`);
    worst = Math.max(worst, err);
  }
  return worst;
}

it('the fixture was made from these inputs (else rerun npm run bench:parity:fixture)', () => {
  const close = (a: number[], b: number[]) =>
    a.every((x, i) => Math.abs(x - b[i]) <= 1e-9 * Math.max(1, Math.abs(b[i])));
  assert.ok(
    close(fingerprint(u.x, u.y, r.x, r.y), fixture.fingerprint.inputs),
    'batches changed: stale fixture',
  );
  for (const variant of ['bbn', 'single'] as const) {
    const m = createModel({ ...PARITY_SPEC, variant }, parityInitRng(variant));
    assert.ok(
      close(fingerprint(m.getParams()), fixture.fingerprint[variant]),
      `${variant} init changed: stale fixture`,
    );
    m.dispose();
  }
});

forEachBackend(backends, 'first-step parity with the float64 PyTorch mirror', () => {
  for (const c of fixture.cases) {
    const name = c.variant === 'bbn' ? `BBN α = ${c.alpha}` : 'CE';
    it(`${name}: logits, loss, gradients, BN buffers${c.update ? ', SGD update' : ''} within ${TOL} per tensor`, (t) => {
      const m = createModel({ ...PARITY_SPEC, variant: c.variant }, parityInitRng(c.variant));
      try {
        assert.ok(relErr(m.predict(u.x), c.logitsBefore) <= TOL, 'eval logits before the step');
        const res =
          m.variant === 'bbn'
            ? m.step({ xu: u.x, yu: u.y, xr: r.x, yr: r.y }, c.alpha ?? 0.5)
            : m.step({ x: u.x, y: u.y });
        const lossErr = Math.abs(res.loss - c.loss) / Math.abs(c.loss);
        assert.ok(lossErr <= TOL, `loss ${res.loss} vs ${c.loss}`);
        const g = checkTensors('gradient', m.layout(), res.grads, c.grads);
        const b = checkTensors('BN buffer', m.bufferLayout(), m.getBuffers(), c.buffers);
        const torch32 = Math.max(...Object.values(c.torch32Rel.grads));
        t.diagnostic(
          `worst relative error: loss ${lossErr.toExponential(1)}, gradient ${g.toExponential(1)} ` +
            `(PyTorch float32 ${torch32.toExponential(1)}), BN buffer ${b.toExponential(1)}`,
        );
        if (c.update && c.logitsAfter) {
          const before = m.getParams();
          const params = before.slice();
          new Sgd(m.numParams, PARITY_SGD).step(params, res.grads, PARITY_SGD.lr);
          const delta = params.map((p, i) => p - before[i]);
          checkTensors('SGD update', m.layout(), delta, c.update);
          m.setParams(params);
          const err = relErr(m.predict(u.x), c.logitsAfter);
          assert.ok(err <= TOL, `eval logits after the step: ${err.toExponential(2)}`);
        }
      } finally {
        m.dispose();
      }
    });
  }
});
