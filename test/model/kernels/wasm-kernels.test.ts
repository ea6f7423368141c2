/**
 * Every wasm training kernel against the reference cpu backend, on seeded random shapes
 * (ResNet-32 and ResNet-50 shapes at batch 1-2 included), plus one end-to-end gradient of a
 * small residual network. The largest absolute and relative errors per kernel are printed at
 * the end (relative = max |wasm − cpu| / max |cpu|).
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
import { randomTensorData, runOnBackend, type TensorData } from './helpers.ts';

/** Worst errors seen per kernel, printed after the suite. */
const worst = new Map<string, { abs: number; rel: number; cases: number }>();

/** Runs `f` on cpu and on wasm (fresh tensors on each), asserts closeness and records the error. */
async function matchesCpu(kernel: string, label: string, f: () => tf.Tensor, relTol = 1e-5): Promise<void> {
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
  const w = worst.get(kernel) ?? { abs: 0, rel: 0, cases: 0 };
  worst.set(kernel, { abs: Math.max(w.abs, abs), rel: Math.max(w.rel, rel), cases: w.cases + 1 });
  assert.ok(rel <= relTol, `${kernel} ${label}: max |wasm-cpu| = ${abs} (relative ${rel}) > ${relTol}`);
}

type Pad = 'same' | 'valid' | number | [[0, 0], [number, number], [number, number], [0, 0]];
interface ConvCase {
  readonly x: [number, number, number, number];
  readonly k: [number, number];
  readonly co: number;
  readonly s: [number, number];
  readonly pad: Pad;
}

/** Conv cases of the two networks, at batch 1-2 (TF 'same' for stride 1, padded 'valid' for 2). */
const NETWORK_CASES: readonly ConvCase[] = [
  { x: [2, 32, 32, 3], k: [3, 3], co: 16, s: [1, 1], pad: 'same' }, // resnet32 stem
  { x: [2, 32, 32, 16], k: [3, 3], co: 16, s: [1, 1], pad: 'same' },
  { x: [2, 34, 34, 16], k: [3, 3], co: 32, s: [2, 2], pad: 'valid' },
  { x: [2, 16, 16, 32], k: [3, 3], co: 32, s: [1, 1], pad: 'same' },
  { x: [2, 18, 18, 32], k: [3, 3], co: 64, s: [2, 2], pad: 'valid' },
  { x: [2, 8, 8, 64], k: [3, 3], co: 64, s: [1, 1], pad: 'same' },
  { x: [1, 38, 38, 3], k: [7, 7], co: 8, s: [2, 2], pad: 'valid' }, // resnet50 stem, padded by 3
  { x: [1, 16, 16, 16], k: [1, 1], co: 8, s: [2, 2], pad: 'valid' }, // projection shortcut
  { x: [1, 9, 9, 16], k: [1, 1], co: 24, s: [1, 1], pad: 'valid' }, // bottleneck 1x1
  { x: [2, 15, 13, 8], k: [1, 1], co: 4, s: [2, 3], pad: 'valid' }, // 1x1, partial last strides
];

/**
 * Seeded random conv cases: odd sizes, non-square, strides 1-3, every padding form. A numeric pad
 * only with square filters and equal strides: tfjs-core 4.22 sizes the output of a numeric pad
 * from the filter height and row stride alone (a wrong shape otherwise, on every backend; the
 * stock wasm forward Conv2D then writes out of bounds).
 */
function randomConvCases(rng: Rng, count: number): ConvCase[] {
  const out: ConvCase[] = [];
  while (out.length < count) {
    const pads: Pad[] = [
      'same',
      'valid',
      rng.int(3),
      [
        [0, 0],
        [rng.int(3), rng.int(3)],
        [rng.int(3), rng.int(3)],
        [0, 0],
      ],
    ];
    const pad = pads[rng.int(pads.length)];
    const kh = [1, 3, 5, 7][rng.int(4)];
    const numeric = typeof pad === 'number';
    const kw = !numeric && rng.int(3) === 0 ? [1, 3, 5][rng.int(3)] : kh;
    const sh = 1 + rng.int(3);
    const sw = numeric ? sh : 1 + rng.int(3);
    out.push({
      x: [1 + rng.int(3), kh + rng.int(9), kw + rng.int(9), 1 + rng.int(6)],
      k: [kh, kw],
      co: 1 + rng.int(6),
      s: [sh, sw],
      pad,
    });
  }
  return out;
}

function label(c: ConvCase): string {
  return `x${c.x.join('x')} k${c.k.join('x')}->${c.co} s${c.s.join(',')} pad ${JSON.stringify(c.pad)}`;
}

/** Runs `f` with tensors built from `data` (shape, values) on the current backend. */
function convTensors(c: ConvCase, rng: Rng) {
  const filterShape: [number, number, number, number] = [c.k[0], c.k[1], c.x[3], c.co];
  const yShape = tf.tidy(
    () => tf.conv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros(filterShape) as tf.Tensor4D, c.s, c.pad).shape,
  );
  return {
    filterShape,
    x: randomTensorData(rng, c.x),
    w: randomTensorData(rng, filterShape),
    dy: randomTensorData(rng, yShape),
  };
}

before(async () => {
  const info = await setupWasmBackend({ threads: 1 });
  assert.equal(info.threads, 1);
});

after(() => {
  const rows = [...worst.entries()].map(
    ([k, w]) =>
      `${k.padEnd(22)} cases ${String(w.cases).padStart(3)}  max abs ${w.abs.toExponential(2)}  max rel ${w.rel.toExponential(2)}`,
  );
  console.log(`wasm kernels vs cpu:\n${rows.join('\n')}`);
});

describe('wasm Conv2DBackpropFilter and Conv2DBackpropInput', () => {
  const rng = Rng.fromSeed('wasm-conv-kernels');
  const cases = [...NETWORK_CASES, ...randomConvCases(rng.split('random'), 40)];
  it('match the cpu backend on network shapes and 40 random shapes, strides and paddings', async () => {
    for (const c of cases) {
      const t = convTensors(c, rng.split(label(c)));
      await matchesCpu(
        'Conv2DBackpropFilter',
        label(c),
        () =>
          tf.engine().runKernel('Conv2DBackpropFilter', { x: t.x.make(), dy: t.dy.make() }, {
            filterShape: t.filterShape,
            strides: c.s,
            pad: c.pad,
            dataFormat: 'NHWC',
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
      );
      await matchesCpu(
        'Conv2DBackpropInput',
        label(c),
        () =>
          tf.engine().runKernel('Conv2DBackpropInput', { dy: t.dy.make(), filter: t.w.make() }, {
            inputShape: c.x,
            strides: c.s,
            pad: c.pad,
            dataFormat: 'NHWC',
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
      );
    }
  });

  it('reject channels-first data with an error naming the kernel and the format', async () => {
    await tf.setBackend('wasm');
    const x = tf.zeros([1, 4, 4, 2]);
    assert.throws(
      () =>
        tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: x }, {
          filterShape: [1, 1, 2, 2],
          strides: 1,
          pad: 'valid',
          dataFormat: 'NCHW',
        } as unknown as tf.NamedAttrMap),
      /Conv2DBackpropFilter: dataFormat 'NCHW'/,
    );
    x.dispose();
  });
});

describe('wasm Tile, Slice, Sum, Mean, BatchMatMul, Identity', () => {
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
      await matchesCpu('Tile', `${shape} x ${reps} ${dtype}`, () => tf.tile(d.make(), reps));
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
      await matchesCpu('Slice', `${shape} @${begin} size ${size}`, () => tf.slice(d.make(), begin, size));
    }
  });

  it('Sum and Mean match cpu on pooled (channel-wise) and stock (other) axis sets', async () => {
    const shape = [3, 5, 4, 6];
    const d = randomTensorData(rng, shape);
    const axesSets: number[][] = [[0, 1, 2], [1, 2], [2], [0], [3], [0, 1, 2, 3], [1, 3], [-2, 1]];
    for (const axes of axesSets) {
      for (const keepDims of [false, true]) {
        const l = `${JSON.stringify(axes)} keepDims ${keepDims}`;
        await matchesCpu('Sum', l, () => tf.sum(d.make(), axes, keepDims));
        await matchesCpu('Mean', l, () => tf.mean(d.make(), axes, keepDims));
      }
    }
    const big = randomTensorData(rng, [2, 32, 32, 16]);
    await matchesCpu('Sum', 'resnet32 bn [0,1,2]', () => tf.sum(big.make(), [0, 1, 2]));
    await matchesCpu('Mean', 'resnet32 bn [0,1,2]', () => tf.mean(big.make(), [0, 1, 2]));
    const ints = randomTensorData(rng, [4, 3], 'int32');
    await matchesCpu('Sum', 'int32 [0]', () => tf.sum(ints.make(), 0));
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
    for (const [l, f] of cases) await matchesCpu('BatchMatMul', l, f);
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
      for (const [l, a, b] of pairs) await matchesCpu(kernel, l, () => op(a.make(), b.make()));
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
    for (const [l, f] of cases) await matchesCpu('FusedBatchNorm', l, f);
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

describe('wasm end-to-end gradients', () => {
  it('a residual block with BatchNorm, stride 2 and option-A shortcut has cpu gradients', async () => {
    const rng = Rng.fromSeed('wasm-e2e');
    const x = randomTensorData(rng, [2, 8, 8, 4]);
    const w1 = randomTensorData(rng, [3, 3, 4, 8]);
    const w2 = randomTensorData(rng, [3, 3, 8, 8]);
    const fc = randomTensorData(rng, [8, 5]);
    const gamma = randomTensorData(rng, [8]);
    const beta = randomTensorData(rng, [8]);
    const bn = (h: tf.Tensor4D) => {
      const { mean, variance } = tf.moments(h, [0, 1, 2]);
      return tf.batchNorm4d(
        h,
        mean as tf.Tensor1D,
        variance as tf.Tensor1D,
        beta.make() as tf.Tensor1D,
        gamma.make() as tf.Tensor1D,
        1e-5,
      );
    };
    const grads = (i: number) => () =>
      tf.tidy(() => {
        const params = [w1.make(), w2.make(), fc.make()];
        const loss = (p1: tf.Tensor, p2: tf.Tensor, p3: tf.Tensor) => {
          const xin = x.make() as tf.Tensor4D;
          const padded = tf.pad(xin, [
            [0, 0],
            [1, 1],
            [1, 1],
            [0, 0],
          ]);
          const h = tf.relu(bn(tf.conv2d(padded, p1 as tf.Tensor4D, 2, 'valid')));
          const o = bn(tf.conv2d(h as tf.Tensor4D, p2 as tf.Tensor4D, 1, 'same'));
          const even = tf.slice(tf.reshape(xin, [2, 4, 2, 4, 2, 4]), [0, 0, 0, 0, 0, 0], [2, 4, 1, 4, 1, 4]);
          const sc = tf.pad(tf.reshape(even, [2, 4, 4, 4]), [
            [0, 0],
            [0, 0],
            [0, 0],
            [2, 2],
          ]);
          const feat = tf.mean(tf.relu(tf.add(o, sc)), [1, 2]);
          return tf.sum(tf.square(tf.matMul(feat as tf.Tensor2D, p3 as tf.Tensor2D)));
        };
        return tf.grads(loss)(params)[i];
      });
    for (const [i, name] of ['conv1 (stride 2)', 'conv2', 'fc'].entries()) {
      await matchesCpu('end-to-end grad', name, grads(i), 1e-4);
    }
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
