/** Seeded tensor data, a cross-backend runner and a cpu comparison for the wasm kernel tests. */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../../src/core/rng.ts';

/** Values for one tensor, made afresh on whichever backend is active when `make` runs. */
export interface TensorData {
  readonly shape: number[];
  readonly dtype: tf.DataType;
  readonly values: Float32Array | Int32Array | Uint8Array;
  make(): tf.Tensor;
}

/** Seeded data: standard normal floats, ints in [-5, 5), or booleans. */
export function randomTensorData(rng: Rng, shape: number[], dtype: tf.DataType = 'float32'): TensorData {
  const n = shape.reduce((a, b) => a * b, 1);
  let values: Float32Array | Int32Array | Uint8Array;
  if (dtype === 'int32') values = Int32Array.from({ length: n }, () => rng.int(10) - 5);
  else if (dtype === 'bool') values = Uint8Array.from({ length: n }, () => rng.int(2));
  else values = Float32Array.from({ length: n }, () => rng.normal());
  return { shape, dtype, values, make: () => tf.tensor(values, shape, dtype) };
}

/** A computed result copied off its backend. */
export interface Result {
  readonly shape: number[];
  readonly dtype: tf.DataType;
  readonly values: ArrayLike<number>;
}

/** Switches to `backend`, runs `f` in a tidy scope and copies its result out. */
export async function runOnBackend(backend: string, f: () => tf.Tensor): Promise<Result> {
  if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') failed`);
  return tf.tidy(() => {
    const t = f();
    return { shape: t.shape, dtype: t.dtype, values: Array.from(t.dataSync() as ArrayLike<number>) };
  });
}

/**
 * Compares results on wasm with the reference cpu backend and keeps the worst error per kernel,
 * for the summary a test file prints at its end (relative = max |wasm − cpu| / max |cpu|).
 */
export class CpuComparison {
  /** Worst absolute/relative error and case count per kernel name. */
  private readonly worst = new Map<string, { abs: number; rel: number; cases: number }>();

  /** Runs `f` on cpu and on wasm (fresh tensors on each) and asserts the results agree. */
  async matches(kernel: string, label: string, f: () => tf.Tensor, relTol = 1e-5): Promise<void> {
    const ref = await runOnBackend('cpu', f);
    const got = await runOnBackend('wasm', f);
    assert.deepEqual(got.shape, ref.shape, `${kernel} ${label}: shape`);
    assert.equal(got.dtype, ref.dtype, `${kernel} ${label}: dtype`);
    let abs = 0;
    let scale = 0;
    for (let i = 0; i < ref.values.length; i++) {
      const d = Math.abs(Number(got.values[i]) - Number(ref.values[i]));
      abs = d > abs || Number.isNaN(d) ? d : abs;
      scale = Math.max(scale, Math.abs(Number(ref.values[i])));
    }
    const rel = scale === 0 ? abs : abs / scale;
    const w = this.worst.get(kernel) ?? { abs: 0, rel: 0, cases: 0 };
    this.worst.set(kernel, { abs: Math.max(w.abs, abs), rel: Math.max(w.rel, rel), cases: w.cases + 1 });
    assert.ok(rel <= relTol, `${kernel} ${label}: max |wasm-cpu| = ${abs} (relative ${rel}) > ${relTol}`);
  }

  /** One line per kernel: cases, max absolute and max relative error. */
  summary(title: string): string {
    const rows = [...this.worst.entries()].map(
      ([k, w]) =>
        `${k.padEnd(22)} cases ${String(w.cases).padStart(3)}  max abs ${w.abs.toExponential(2)}  ` +
        `max rel ${w.rel.toExponential(2)}`,
    );
    return `${title}:\n${rows.join('\n')}`;
  }
}
