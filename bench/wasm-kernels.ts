/**
 * Wasm training kernels: per-kernel time of ours vs the stock wasm kernel vs the cpu backend at
 * ResNet-32 shapes, then a full ResNet-32 forward+backward step (tf.variableGrads) on wasm with
 * each requested thread count. Prints wall and process-CPU milliseconds (CPU time is the steadier
 * number on a shared machine; with threads, wall is what counts) and the ratios.
 *
 *   node --import tsx bench/wasm-kernels.ts [--batch 128] [--threads 1,2] [--steps 3]
 *        [--reps 3] [--cpu-batch 8 | --no-cpu] [--skip-kernels] [--skip-step] [--bn fused,composite]
 *        [--r50-batch N]   (adds ResNet-50 gradient shapes at 224 px, batch N, to the kernel table)
 *
 * The step network mirrors src/model's ResNet-32 ops (explicit pad and a valid stride-2 conv,
 * option-A shortcut by reshape/slice/pad, mean-pooled features, matMul) with BatchNorm either as
 * src/model has it today (`composite`: tf.moments + tf.batchNorm4d) or as `batchNormTrain`
 * (`fused`); `--bn fused,composite` picks (fused first, so each heap high-water is its own).
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { Rng } from '../src/core/rng.ts';
import { batchNormTrain } from '../src/model/kernels/batch_norm_train.ts';
import { stockKernel } from '../src/model/kernels/kernel_utils.ts';
import { wasmTrainingKernelConfigs } from '../src/model/kernels/register_all_kernels.ts';
import { setupWasmBackend } from '../src/model/wasm-backend.ts';

const { values: opts } = parseArgs({
  options: {
    batch: { type: 'string', default: '128' },
    threads: { type: 'string', default: '1,2' },
    steps: { type: 'string', default: '3' },
    reps: { type: 'string', default: '3' },
    'cpu-batch': { type: 'string' },
    'no-cpu': { type: 'boolean', default: false },
    'skip-kernels': { type: 'boolean', default: false },
    'skip-step': { type: 'boolean', default: false },
    bn: { type: 'string', default: 'fused,composite' },
    'r50-batch': { type: 'string' },
  },
});
const BATCH = Number(opts.batch);
const THREADS = opts.threads.split(',').map(Number);
const STEPS = Number(opts.steps);
const BN_MODES = opts.bn.split(',') as BnMode[];
const REPS = Number(opts.reps);
// The cpu backend's conv gradients are naive loops (minutes at batch 128): by default its time is
// measured at batch 8 and scaled linearly to the benchmark batch.
const CPU_BATCH = opts['no-cpu'] ? 0 : Number(opts['cpu-batch'] ?? Math.min(BATCH, 8));
const rng = Rng.fromSeed('bench-wasm-kernels');

/** Best-of-`reps` wall and process-CPU milliseconds of `f` (after one untimed warm-up run). */
function measure(f: () => void, reps: number): { wall: number; cpu: number } {
  f();
  let wall = Number.POSITIVE_INFINITY;
  let cpu = Number.POSITIVE_INFINITY;
  for (let r = 0; r < reps; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    f();
    const c = process.cpuUsage(c0);
    wall = Math.min(wall, performance.now() - t0);
    cpu = Math.min(cpu, (c.user + c.system) / 1000);
  }
  return { wall, cpu };
}

function data(shape: number[]): Float32Array {
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
}

/** One kernel invocation: name, input shapes (float32) and attrs. */
interface KernelCase {
  readonly label: string;
  readonly kernel: string;
  readonly inputs: Record<string, number[]>;
  readonly attrs: Record<string, unknown>;
  /** Shrinks the case to another batch size (for the cpu reference). */
  readonly atBatch?: (b: number) => KernelCase;
  /** Skip the cpu reference (its naive loops would take minutes here). */
  readonly noCpu?: boolean;
}

/** Runs a kernel config's function directly on the wasm backend and frees the output. */
function runWasm(
  config: tf.KernelConfig,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, unknown>,
): void {
  const backend = tf.engine().backend as BackendWasm;
  const out = config.kernelFunc({ inputs, backend, attrs: attrs as tf.NamedAttrMap });
  for (const o of Array.isArray(out) ? out : [out]) backend.disposeData(o.dataId);
}

function fmt(ms: number | undefined): string {
  return ms === undefined ? '     -' : ms >= 100 ? ms.toFixed(0).padStart(6) : ms.toFixed(1).padStart(6);
}

function ratio(a: number | undefined, b: number): string {
  return a === undefined ? '     -' : `${(a / b).toFixed(1)}x`.padStart(6);
}

async function timeCase(c: KernelCase): Promise<void> {
  await tf.setBackend('wasm');
  const ours = wasmTrainingKernelConfigs.find((k) => k.kernelName === c.kernel);
  const stock = stockKernel(c.kernel) ?? (ours === undefined ? tf.getKernel(c.kernel, 'wasm') : undefined);
  const mine = ours ?? tf.getKernel(c.kernel, 'wasm');
  if (mine === undefined) throw new Error(`no wasm kernel ${c.kernel}`);
  const inputs = Object.fromEntries(Object.entries(c.inputs).map(([k, s]) => [k, tf.tensor(data(s), s)]));
  const t = measure(() => runWasm(mine, inputs, c.attrs), REPS);
  const s =
    ours && stock
      ? measure(() => runWasm(stock, inputs, c.attrs), c.kernel.startsWith('Conv2D') ? 1 : REPS)
      : undefined;
  tf.dispose(Object.values(inputs));
  let cpu: number | undefined;
  if (CPU_BATCH > 0 && !c.noCpu) {
    const cc = CPU_BATCH === BATCH || c.atBatch === undefined ? c : c.atBatch(CPU_BATCH);
    await tf.setBackend('cpu');
    const cin = Object.fromEntries(Object.entries(cc.inputs).map(([k, sh]) => [k, tf.tensor(data(sh), sh)]));
    const one = () =>
      tf.dispose(tf.engine().runKernel(cc.kernel, cin, cc.attrs as tf.NamedAttrMap) as tf.Tensor);
    one();
    const c0 = process.cpuUsage();
    one();
    const cu = process.cpuUsage(c0);
    cpu = ((cu.user + cu.system) / 1000) * (BATCH / (cc === c ? BATCH : CPU_BATCH));
    tf.dispose(Object.values(cin));
    await tf.setBackend('wasm');
  }
  const role = ours === undefined ? '(stock)' : '';
  console.log(
    `${`${c.kernel} ${role}`.padEnd(30)} ${c.label.padEnd(26)} ${fmt(t.wall)} ${fmt(t.cpu)} ${fmt(s?.cpu)} ${fmt(cpu)} ${ratio(s?.cpu, t.cpu)} ${ratio(cpu, t.cpu)}`,
  );
}

/** ResNet-32 conv layers: [in px, cin, cout, stride] (stride-2 convs see a 1-px padded input). */
const CONVS: Array<[number, number, number, number]> = [
  [32, 3, 16, 1],
  [32, 16, 16, 1],
  [32, 16, 32, 2],
  [16, 32, 32, 1],
  [16, 32, 64, 2],
  [8, 64, 64, 1],
];

function convCases(b: number): KernelCase[] {
  const out: KernelCase[] = [];
  for (const [px, ci, co, s] of CONVS) {
    const h = s === 1 ? px : px + 2;
    const oh = s === 1 ? px : px / 2;
    const pad = s === 1 ? 'same' : 'valid';
    const label = `${px}px ${ci}->${co} s${s}`;
    const x = [b, h, h, ci];
    const dy = [b, oh, oh, co];
    const w = [3, 3, ci, co];
    const base = { strides: s, pad, dataFormat: 'NHWC' };
    out.push(
      { label, kernel: 'Conv2D', inputs: { x, filter: w }, attrs: { ...base, dilations: 1 } },
      { label, kernel: 'Conv2DBackpropInput', inputs: { dy, filter: w }, attrs: { ...base, inputShape: x } },
      { label, kernel: 'Conv2DBackpropFilter', inputs: { x, dy }, attrs: { ...base, filterShape: w } },
    );
  }
  return out.map((c, i) => ({ ...c, atBatch: (n: number) => convCases(n)[i] }));
}

/** ResNet-50 gradient shapes at 224 px: [label, x shape, filter shape, stride, dy shape]. */
function r50Cases(b: number): KernelCase[] {
  const shapes: Array<[string, number[], number[], number, number[]]> = [
    ['stem 7x7 s2 (padded 230)', [b, 230, 230, 3], [7, 7, 3, 64], 2, [b, 112, 112, 64]],
    ['56px 1x1 64->256', [b, 56, 56, 64], [1, 1, 64, 256], 1, [b, 56, 56, 256]],
    ['56->28 3x3 s2 128 (padded 58)', [b, 58, 58, 128], [3, 3, 128, 128], 2, [b, 28, 28, 128]],
    ['56->28 1x1 s2 256->512', [b, 56, 56, 256], [1, 1, 256, 512], 2, [b, 28, 28, 512]],
  ];
  const out: KernelCase[] = [];
  for (const [label, x, w, st, dy] of shapes) {
    const base = { strides: st, pad: 'valid', dataFormat: 'NHWC' };
    const l = `r50 ${label}`;
    // The stem's dX is never needed (its input is the image).
    if (w[2] !== 3) {
      out.push({
        label: l,
        kernel: 'Conv2DBackpropInput',
        inputs: { dy, filter: w },
        attrs: { ...base, inputShape: x },
        noCpu: true,
      });
    }
    out.push({
      label: l,
      kernel: 'Conv2DBackpropFilter',
      inputs: { x, dy },
      attrs: { ...base, filterShape: w },
      noCpu: true,
    });
  }
  return out;
}

function otherCases(b: number): KernelCase[] {
  const cases: KernelCase[] = [];
  for (const [px, c] of [
    [32, 16],
    [8, 64],
  ]) {
    const label = `[${b},${px},${px},${c}]`;
    cases.push(
      { label, kernel: 'Tile', inputs: { x: [1, 1, 1, c] }, attrs: { reps: [b, px, px, 1] } },
      { label, kernel: 'Sum', inputs: { x: [b, px, px, c] }, attrs: { axis: [0, 1, 2], keepDims: false } },
      { label, kernel: 'Mean', inputs: { x: [b, px, px, c] }, attrs: { axis: [0, 1, 2], keepDims: false } },
      { label, kernel: 'Identity', inputs: { x: [b, px, px, c] }, attrs: {} },
    );
  }
  cases.push(
    {
      label: `option-A [${b},16,2,16,2,16]`,
      kernel: 'Slice',
      inputs: { x: [b, 16, 2, 16, 2, 16] },
      attrs: { begin: [0, 0, 0, 0, 0, 0], size: [b, 16, 1, 16, 1, 16] },
    },
    {
      label: `fc dW [${b},64]T[${b},10]`,
      kernel: 'BatchMatMul',
      inputs: { a: [b, 64], b: [b, 10] },
      attrs: { transposeA: true, transposeB: false },
    },
    {
      label: `fc dX [${b},10][64,10]T`,
      kernel: 'BatchMatMul',
      inputs: { a: [b, 10], b: [64, 10] },
      attrs: { transposeA: false, transposeB: true },
    },
    {
      label: 'r50 fc dW [64,2048]T[64,1000]',
      kernel: 'BatchMatMul',
      inputs: { a: [64, 2048], b: [64, 1000] },
      attrs: { transposeA: true, transposeB: false },
    },
  );
  return cases.map((c) => ({ ...c, atBatch: (n: number) => otherCases(n)[cases.indexOf(c)] }));
}

// ---------------------------------------------------------------- the ResNet-32 step
interface Layer {
  readonly w: tf.Variable;
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;
  readonly stride: number;
}

function variable(values: Float32Array, shape: number[]): tf.Variable {
  return tf.tidy(() => tf.variable(tf.tensor(values, shape)));
}

function layer(cin: number, cout: number, stride: number): Layer {
  const std = Math.sqrt(2 / (9 * cin));
  return {
    w: variable(
      data([3, 3, cin, cout]).map((v) => v * std),
      [3, 3, cin, cout],
    ),
    gamma: variable(new Float32Array(cout).fill(1), [cout]),
    beta: variable(new Float32Array(cout), [cout]),
    stride,
  };
}

/** `composite`: tf.moments + tf.batchNorm4d (src/model today); `fused`: batchNormTrain. */
type BnMode = 'composite' | 'fused';

function convBn(x: tf.Tensor4D, l: Layer, bn: BnMode): tf.Tensor4D {
  const w = l.w as tf.Tensor4D;
  const y =
    l.stride === 1
      ? tf.conv2d(x, w, 1, 'same')
      : tf.conv2d(
          tf.pad(x, [
            [0, 0],
            [1, 1],
            [1, 1],
            [0, 0],
          ]),
          w,
          l.stride,
          'valid',
        );
  if (bn === 'fused') return batchNormTrain(y, l.gamma as tf.Tensor1D, l.beta as tf.Tensor1D, 1e-5).y;
  const { mean, variance } = tf.moments(y, [0, 1, 2]);
  return tf.batchNorm4d(
    y,
    mean as tf.Tensor1D,
    variance as tf.Tensor1D,
    l.beta as tf.Tensor1D,
    l.gamma as tf.Tensor1D,
    1e-5,
  );
}

function optionA(x: tf.Tensor4D, p: number): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const even = tf.slice(
    tf.reshape(x, [b, h / 2, 2, w / 2, 2, c]),
    [0, 0, 0, 0, 0, 0],
    [b, h / 2, 1, w / 2, 1, c],
  );
  return tf.pad(tf.reshape(even, [b, h / 2, w / 2, c]), [
    [0, 0],
    [0, 0],
    [0, 0],
    [p, p],
  ]);
}

/** Builds ResNet-32 (3 stages x 5 BasicBlocks, widths 16/32/64) and returns its loss function. */
function resnet32(batch: number, bn: BnMode): { loss: () => tf.Scalar; dispose: () => void } {
  const stem = layer(3, 16, 1);
  const blocks: Array<{ a: Layer; b: Layer; pad: number | null }> = [];
  let cin = 16;
  for (const [planes, first] of [
    [16, 1],
    [32, 2],
    [64, 2],
  ]) {
    for (let i = 0; i < 5; i++) {
      const s = i === 0 ? first : 1;
      blocks.push({
        a: layer(cin, planes, s),
        b: layer(planes, planes, 1),
        pad: cin !== planes ? planes / 4 : null,
      });
      cin = planes;
    }
  }
  const fcW = variable(
    data([64, 10]).map((v) => v * 0.1),
    [64, 10],
  );
  const fcB = variable(new Float32Array(10), [10]);
  const x = tf.tensor4d(data([batch, 32, 32, 3]), [batch, 32, 32, 3]);
  const classes = Int32Array.from({ length: batch }, (_, i) => i % 10);
  const labels = tf.tidy(() => tf.oneHot(tf.tensor1d(classes, 'int32'), 10));
  const loss = () => {
    let h = tf.relu(convBn(x, stem, bn)) as tf.Tensor4D;
    for (const bl of blocks) {
      const o = convBn(tf.relu(convBn(h, bl.a, bn)) as tf.Tensor4D, bl.b, bn);
      h = tf.relu(tf.add(o, bl.pad === null ? h : optionA(h, bl.pad))) as tf.Tensor4D;
    }
    const logits = tf.add(tf.matMul(tf.mean(h, [1, 2]) as tf.Tensor2D, fcW), fcB);
    return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
  };
  const vars = [stem, ...blocks.flatMap((b) => [b.a, b.b])].flatMap((l) => [l.w, l.gamma, l.beta]);
  return { loss, dispose: () => tf.dispose([...vars, fcW, fcB, x, labels]) };
}

/** Step time with one thread count and each BatchNorm form, on one backend instance. */
async function benchStep(threads: number): Promise<Map<BnMode, { wall: number; cpu: number }>> {
  const info = await setupWasmBackend({ threads });
  const out = new Map<BnMode, { wall: number; cpu: number }>();
  for (const bn of BN_MODES) {
    const net = resnet32(BATCH, bn);
    const step = () => {
      const { value, grads } = tf.variableGrads(net.loss);
      value.dataSync();
      for (const g of Object.values(grads)) g.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
    };
    const t = measure(step, STEPS);
    const heap =
      ((tf.engine().backend as BackendWasm).wasm as unknown as { HEAPU8: Uint8Array }).HEAPU8.length / 1e6;
    net.dispose();
    out.set(bn, t);
    console.log(
      `ResNet-32 step, batch ${BATCH}, BN ${bn.padEnd(9)}, wasm ${info.binary} ${info.threads} thread(s): ` +
        `wall ${(t.wall / 1000).toFixed(2)} s, process CPU ${(t.cpu / 1000).toFixed(2)} s ` +
        `(best of ${STEPS}), wasm heap high-water ${heap.toFixed(0)} MB`,
    );
  }
  return out;
}

// ---------------------------------------------------------------- main
await setupWasmBackend({ threads: THREADS[0] });
console.log(
  `tfjs ${tf.version.tfjs}, Node ${process.versions.node}, batch ${BATCH}, cpu reference at batch ${CPU_BATCH || 'off'}`,
);
if (!opts['skip-kernels']) {
  console.log(
    `\n${'kernel'.padEnd(30)} ${'shape'.padEnd(26)} ${'wall'.padStart(6)} ${'cpu'.padStart(6)} ${'stock'.padStart(6)} ${'cpubk'.padStart(6)} ${'st/us'.padStart(6)} ${'cb/us'.padStart(6)}`,
  );
  console.log(
    '(ms; "cpu" = process CPU of ours, "stock"/"cpubk" = process CPU of the stock wasm kernel / cpu backend, scaled to the batch)',
  );
  const r50 = opts['r50-batch'] === undefined ? [] : r50Cases(Number(opts['r50-batch']));
  for (const c of [...convCases(BATCH), ...otherCases(BATCH), ...r50]) await timeCase(c);
}
if (!opts['skip-step']) {
  console.log('');
  const times: Array<Map<BnMode, { wall: number; cpu: number }>> = [];
  for (const th of THREADS) times.push(await benchStep(th));
  for (const bn of BN_MODES) {
    for (let i = 1; i < times.length; i++) {
      const base = times[0].get(bn)?.wall ?? Number.NaN;
      const t = times[i].get(bn)?.wall ?? Number.NaN;
      console.log(
        `BN ${bn}: speed-up ${THREADS[i]} vs ${THREADS[0]} threads (wall) ${(base / t).toFixed(2)}x`,
      );
    }
  }
}
