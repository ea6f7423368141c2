/** Seeded tensor data and a cross-backend runner for the wasm kernel tests. */
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
