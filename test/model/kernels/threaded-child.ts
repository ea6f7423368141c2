/**
 * Child process for wasm-threads.test.ts: sets up the stock single-threaded wasm backend, switches
 * it to the threaded one, computes a conv filter gradient and two ops that fall back to stock
 * kernels (which must follow the switch) on it and on cpu, prints one JSON line and returns
 * without `process.exit`, so the parent also sees that the pool's worker threads do not keep
 * the process alive.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { Rng } from '../../../src/core/rng.ts';
import { setupWasmBackend } from '../../../src/model/wasm-backend.ts';
import { randomTensorData, runOnBackend } from './helpers.ts';

const threads = Number(process.argv[2]);
await setupWasmBackend({ threads: 1 });
const info = await setupWasmBackend({ threads });
const rng = Rng.fromSeed('threaded-child');
const x = randomTensorData(rng, [4, 16, 16, 8]);
const dy = randomTensorData(rng, [4, 8, 8, 12]);
const dw = () =>
  tf.engine().runKernel('Conv2DBackpropFilter', { x: x.make(), dy: dy.make() }, {
    filterShape: [3, 3, 8, 12],
    strides: 2,
    pad: 'same',
    dataFormat: 'NHWC',
  } as unknown as tf.NamedAttrMap) as tf.Tensor;
const small = randomTensorData(rng, [3, 4]);
const cases: Array<() => tf.Tensor> = [
  dw,
  // Tiny transposed product and an int32 sum: both run the stock kernels.
  () => tf.matMul(small.make() as tf.Tensor2D, small.make() as tf.Tensor2D, true, false),
  () =>
    tf.sum(
      tf.tensor2d(
        [
          [1, 2],
          [3, 4],
        ],
        [2, 2],
        'int32',
      ),
      0,
    ),
];
let rel = 0;
for (const f of cases) {
  const ref = await runOnBackend('cpu', f);
  const got = await runOnBackend('wasm', f);
  let abs = 0;
  let scale = 0;
  for (let i = 0; i < ref.values.length; i++) {
    abs = Math.max(abs, Math.abs(got.values[i] - ref.values[i]));
    scale = Math.max(scale, Math.abs(ref.values[i]));
  }
  rel = Math.max(rel, abs / scale);
}
console.log(JSON.stringify({ ...info, rel }));
