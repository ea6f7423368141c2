/**
 * The wasm Tile, Slice, Sum, Mean, BatchMatMul, Multiply, Add, Sub, FusedBatchNorm and Identity
 * kernels against the reference cpu backend (fast paths and the shapes they hand to the stock
 * kernels), and the registration and thread-count API. The largest errors per kernel are printed
 * at the end.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { Rng } from '../../../src/core/rng.ts';
import {
  registerWasmTrainingKernels,
  setupWasmBackend,
  unregisterWasmTrainingKernels,
  WasmBackendError,
  wasmTrainingKernelsRegistered,
} from '../../../src/model/wasm-backend.ts';
import { CpuComparison, randomTensorData, type TensorData } from './helpers.ts';

const cmp = new CpuComparison();

before(async () => {
  const info = await setupWasmBackend({ threads: 1 });
  assert.equal(info.threads, 1);
});

after(() => console.log(cmp.summary('wasm kernels vs cpu')));

describe('wasm Tile, Slice, Sum, Mean, BatchMatMul, Multiply, Add, Sub, FusedBatchNorm, Identity', () => {
  const rng = Rng.fromSeed('wasm-misc-kernels');

  it('Tile matches cpu for ranks 1-5, BatchNorm-gradient tiles and int32/bool tensors', async () => {
    const shapes: Array<[number[], number[], tf.DataType]> = [
      [[1, 1, 1, 16], [2, 5, 5, 1], 'float32'],
      [[3], [4], 'float32'],
      [[2, 3], [1, 1], 'int32'],
      [[2, 1, 3], [2, 3, 1], 'bool'],
      [[2, 3, 1, 2, 2], [1, 2, 3, 1, 2], 'float32'],
    ];
    for (let i = 0; i < 10; i++) {
      const rank = 1 + rng.int(4);
      shapes.push([
        Array.from({ length: rank }, () => 1 + rng.int(4)),
        Array.from({ length: rank }, () => 1 + rng.int(3)),
        'float32',
      ]);
    }
    for (const [shape, reps, dtype] of shapes) {
      const d = randomTensorData(rng, shape, dtype);
      await cmp.matches('Tile', `${shape} x ${reps} ${dtype}`, () => tf.tile(d.make(), reps));
    }
  });

  it('Slice matches cpu for ranks 1-6, including the option-A shortcut slice', async () => {
    const cases: Array<[number[], number[], number[]]> = [
      [
        [2, 4, 2, 4, 2, 3],
        [0, 0, 0, 0, 0, 0],
        [2, 4, 1, 4, 1, 3],
      ],
    ];
    for (let i = 0; i < 20; i++) {
      const rank = 1 + rng.int(6);
      const shape = Array.from({ length: rank }, () => 1 + rng.int(5));
      const begin = shape.map((s) => rng.int(s));
      const size = shape.map((s, a) => (rng.int(3) === 0 ? -1 : 1 + rng.int(s - begin[a])));
      cases.push([shape, begin, size]);
    }
    for (const [shape, begin, size] of cases) {
      const d = randomTensorData(rng, shape, rng.int(4) === 0 ? 'int32' : 'float32');
      await cmp.matches('Slice', `${shape} @${begin} size ${size}`, () => tf.slice(d.make(), begin, size));
    }
  });

  it('Sum and Mean match cpu on pooled (channel-wise) and stock (other) axis sets', async () => {
    const shape = [3, 5, 4, 6];
    const d = randomTensorData(rng, shape);
    const axesSets: number[][] = [[0, 1, 2], [1, 2], [2], [0], [3], [0, 1, 2, 3], [1, 3], [-2, 1]];
    for (const axes of axesSets) {
      for (const keepDims of [false, true]) {
        const l = `${JSON.stringify(axes)} keepDims ${keepDims}`;
        await cmp.matches('Sum', l, () => tf.sum(d.make(), axes, keepDims));
        await cmp.matches('Mean', l, () => tf.mean(d.make(), axes, keepDims));
      }
    }
    const big = randomTensorData(rng, [2, 32, 32, 16]);
    await cmp.matches('Sum', 'resnet32 bn [0,1,2]', () => tf.sum(big.make(), [0, 1, 2]));
    await cmp.matches('Mean', 'resnet32 bn [0,1,2]', () => tf.mean(big.make(), [0, 1, 2]));
    const ints = randomTensorData(rng, [4, 3], 'int32');
    await cmp.matches('Sum', 'int32 [0]', () => tf.sum(ints.make(), 0));
  });

  it('BatchMatMul matches cpu with every transpose combination, batched or not', async () => {
    const a = randomTensorData(rng, [5, 7]);
    const at = randomTensorData(rng, [7, 5]);
    const b = randomTensorData(rng, [7, 3]);
    const bt = randomTensorData(rng, [3, 7]);
    const cases: Array<[string, () => tf.Tensor]> = [
      ['plain', () => tf.matMul(a.make() as tf.Tensor2D, b.make() as tf.Tensor2D)],
      ['tA', () => tf.matMul(at.make() as tf.Tensor2D, b.make() as tf.Tensor2D, true, false)],
      ['tB', () => tf.matMul(a.make() as tf.Tensor2D, bt.make() as tf.Tensor2D, false, true)],
      ['tA tB', () => tf.matMul(at.make() as tf.Tensor2D, bt.make() as tf.Tensor2D, true, true)],
      ['rank3 batch 1 tA', () => tf.matMul(at.make().expandDims(0), b.make().expandDims(0), true, false)],
      [
        'batch 2 tB',
        () => tf.matMul(tf.stack([a.make(), a.make()]), tf.stack([bt.make(), bt.make()]), false, true),
      ],
    ];
    for (const [l, f] of cases) await cmp.matches('BatchMatMul', l, f);
  });

  it('Multiply, Add and Sub match cpu for per-channel operands (either side) and plain shapes', async () => {
    const full = randomTensorData(rng, [3, 8, 8, 16]);
    const other = randomTensorData(rng, [3, 8, 8, 16]);
    const vec = randomTensorData(rng, [16]);
    const vec4 = randomTensorData(rng, [1, 1, 1, 16]);
    const rows = randomTensorData(rng, [300, 16]);
    const small = randomTensorData(rng, [2, 16]);
    const ops: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
      ['Multiply', tf.mul],
      ['Add', tf.add],
      ['Sub', tf.sub],
    ];
    const pairs: Array<[string, TensorData, TensorData]> = [
      ['x, [C]', full, vec],
      ['[C], x', vec, full],
      ['x, [1,1,1,C]', full, vec4],
      ['[1,1,1,C], x', vec4, full],
      ['[300,C], [C]', rows, vec],
      ['x, x', full, other],
      ['small [2,C], [C]', small, vec],
    ];
    for (const [kernel, op] of ops) {
      for (const [l, a, b] of pairs) await cmp.matches(kernel, l, () => op(a.make(), b.make()));
    }
  });

  it('FusedBatchNorm matches cpu with per-channel statistics, with or without scale and offset', async () => {
    const x4 = randomTensorData(rng, [3, 8, 8, 16]);
    const x2 = randomTensorData(rng, [300, 16]);
    const mean = randomTensorData(rng, [16]);
    const variance = { ...randomTensorData(rng, [16]), make: () => tf.abs(mean.make()).add(0.5) };
    const scale = randomTensorData(rng, [16]);
    const offset = randomTensorData(rng, [16]);
    const full = randomTensorData(rng, [3, 8, 8, 16]);
    const cases: Array<[string, () => tf.Tensor]> = [
      [
        '4d all',
        () =>
          tf.batchNorm4d(
            x4.make() as tf.Tensor4D,
            mean.make() as tf.Tensor1D,
            variance.make() as tf.Tensor1D,
            offset.make() as tf.Tensor1D,
            scale.make() as tf.Tensor1D,
            1e-5,
          ),
      ],
      [
        '4d no scale/offset',
        () =>
          tf.batchNorm4d(
            x4.make() as tf.Tensor4D,
            mean.make() as tf.Tensor1D,
            variance.make() as tf.Tensor1D,
          ),
      ],
      [
        '2d all',
        () =>
          tf.batchNorm2d(
            x2.make() as tf.Tensor2D,
            mean.make() as tf.Tensor1D,
            variance.make() as tf.Tensor1D,
            offset.make() as tf.Tensor1D,
            scale.make() as tf.Tensor1D,
            1e-3,
          ),
      ],
      [
        '4d full-shape statistics (stock)',
        () =>
          tf.batchNorm(
            x4.make(),
            full.make(),
            tf.abs(full.make()).add(0.5),
            full.make(),
            tf.neg(full.make()),
            1e-5,
          ),
      ],
    ];
    for (const [l, f] of cases) await cmp.matches('FusedBatchNorm', l, f);
  });

  it('Identity shares the buffer: disposing the clone leaves the original intact', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor1d([1, 2, 3]);
    const y = tf.clone(x);
    y.dispose();
    assert.deepEqual(Array.from(x.dataSync()), [1, 2, 3]);
    x.dispose();
  });
});

describe('wasm kernel registration', () => {
  it('is idempotent and unregistering restores the stock kernels', async () => {
    const stockTile = tf.getKernel('Tile', 'cpu');
    assert.ok(stockTile, 'cpu Tile exists');
    assert.deepEqual(registerWasmTrainingKernels(), registerWasmTrainingKernels());
    assert.ok(wasmTrainingKernelsRegistered());
    const ours = tf.getKernel('Tile', 'wasm');
    unregisterWasmTrainingKernels();
    assert.equal(tf.getKernel('Conv2DBackpropFilter', 'wasm'), undefined, 'no stock dW kernel on wasm');
    assert.notEqual(tf.getKernel('Tile', 'wasm'), ours, 'stock Tile is back');
    assert.ok(tf.getKernel('Tile', 'wasm'));
    registerWasmTrainingKernels();
    assert.equal(tf.getKernel('Tile', 'wasm'), ours);
  });

  it('rejects thread counts outside 1..8 naming the option', async () => {
    for (const threads of [0, 9, 1.5]) {
      await assert.rejects(setupWasmBackend({ threads }), (e: unknown) => {
        assert.ok(e instanceof WasmBackendError);
        assert.match(e.message, new RegExp(`WasmSetupOptions\\.threads \\(${threads}\\)`));
        return true;
      });
    }
  });

  it('refuses to change the thread count while tensors live on wasm', async () => {
    await tf.setBackend('wasm');
    const keep = tf.ones([2]);
    await assert.rejects(
      setupWasmBackend({ threads: 2 }),
      /cannot switch wasm from 1 to 2 threads while \d+ tensors/,
    );
    keep.dispose();
    const again = await setupWasmBackend({ threads: 1 });
    assert.equal(again.threads, 1);
  });
});
