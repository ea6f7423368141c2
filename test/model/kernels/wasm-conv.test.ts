/**
 * The wasm Conv2DBackpropFilter and Conv2DBackpropInput kernels against the reference cpu
 * backend, on the ResNet-32/ResNet-50 conv shapes at batch 1-2 and seeded random shapes, strides
 * and paddings, plus the gradients of a small residual network end to end. The largest errors
 * per kernel are printed at the end.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { Rng } from '../../../src/core/rng.ts';
import { setupWasmBackend } from '../../../src/model/wasm-backend.ts';
import { CpuComparison, randomTensorData } from './helpers.ts';

const cmp = new CpuComparison();

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

after(() => console.log(cmp.summary('wasm conv kernels vs cpu')));

describe('wasm Conv2DBackpropFilter and Conv2DBackpropInput', () => {
  const rng = Rng.fromSeed('wasm-conv-kernels');
  const cases = [...NETWORK_CASES, ...randomConvCases(rng.split('random'), 40)];
  it('match the cpu backend on network shapes and 40 random shapes, strides and paddings', async () => {
    for (const c of cases) {
      const t = convTensors(c, rng.split(label(c)));
      await cmp.matches(
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
      await cmp.matches(
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
      await cmp.matches('end-to-end grad', name, grads(i), 1e-4);
    }
  });
});
