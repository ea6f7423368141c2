/**
 * Makes test/model/fixtures/parity-step.json, the reference numbers of the first-step parity test
 * (test/model/parity-step.test.ts): writes the check's inputs (initial parameters in PyTorch layout,
 * the two batches) to a temporary file and runs the PyTorch mirror (bench/parity/step_ref.py) on
 * them in float64 (the reference) and float32 (PyTorch's own rounding, for scale).
 *
 *   npm run bench:parity:fixture     (needs PyTorch: PARITY_PYTHON, default /work/torch-venv/bin/python)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel } from '../../src/model/factory.ts';
import {
  fingerprint,
  PARITY_ALPHAS,
  PARITY_BATCH,
  PARITY_SGD,
  PARITY_SPEC,
  parityBatches,
  parityInitRng,
} from '../../test/model/parity-step.ts';
import { torchShape, toTorchLayout } from './layout.ts';

const python = process.env.PARITY_PYTHON ?? '/work/torch-venv/bin/python';
const out = 'test/model/fixtures/parity-step.json';
const { u, r } = parityBatches();
const variants = (['bbn', 'single'] as const).map((variant) => {
  const m = createModel({ ...PARITY_SPEC, variant }, parityInitRng(variant));
  try {
    const flat = m.getParams();
    return {
      variant,
      fingerprint: fingerprint(flat),
      tensors: m
        .layout()
        .map((e) => ({ name: e.name, shape: torchShape(e), values: Array.from(toTorchLayout(e, flat)) })),
    };
  } finally {
    m.dispose();
  }
});
const input = {
  spec: PARITY_SPEC,
  batch: PARITY_BATCH,
  sgd: PARITY_SGD,
  alphas: PARITY_ALPHAS,
  fingerprint: { inputs: fingerprint(u.x, u.y, r.x, r.y) },
  xu: Array.from(u.x),
  yu: Array.from(u.y),
  xr: Array.from(r.x),
  yr: Array.from(r.y),
  variants,
};
const dir = mkdtempSync(join(tmpdir(), 'parity-step-'));
try {
  const file = join(dir, 'input.json');
  writeFileSync(file, JSON.stringify(input));
  const res = spawnSync(python, ['bench/parity/step_ref.py', '--input', file, '--out', out], {
    stdio: 'inherit',
  });
  if (res.status !== 0) {
    process.stderr.write(`step_ref.py failed (exit ${res.status ?? res.signal}); is PyTorch at ${python}?\n`);
    process.exit(1);
  }
  // The repository's formatter owns JSON layout too (biome check runs in CI).
  spawnSync('npx', ['biome', 'format', '--write', out], { stdio: 'inherit' });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
