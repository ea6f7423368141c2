/**
 * Backend smoke benchmark: one training step (forward + backward) of a ResNet-like conv stack on
 * 32x32x3 images, on tensorflow with 1 and 2 threads, wasm and the pure-JS cpu backend, each in its
 * own process (TensorFlow fixes its thread count at load). Prints seconds per step, scaled to a
 * batch of 128, and ratios against tensorflow with 1 thread.
 *
 * usage: node --import tsx bench/backend-smoke.ts [--steps N]
 * The stack: a 3x3 stem to 16 channels, then 3 stages (16, 32, 64 channels; stride 2 between) of 2
 * residual blocks of two 3x3 convs (13 convs; ResNet-32 has 31), global average pool, dense 10,
 * softmax cross-entropy. No batch norm: this measures the conv kernels, not the model.
 * Stock wasm has no Conv2DBackpropFilter kernel (the model layer registers one), so for wasm the
 * step falls back to forward + input gradients when that kernel is missing, and says so.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../src/core/rng.ts';
import { type BackendName, selectBackend } from '../src/model/backend.ts';

interface Result {
  label: string;
  batch: number;
  secondsPerStep: number;
  per128: number;
  note: string;
}

const STAGES = [16, 32, 64];
const BLOCKS = 2;

/** Conv filters [3,3,in,out] with He-scaled seeded values, in the order `forward` uses them. */
function makeWeights(rng: Rng): { convs: tf.Variable[]; dense: tf.Variable } {
  const convs: tf.Variable[] = [];
  const conv = (cin: number, cout: number) => {
    const scale = Math.sqrt(2 / (9 * cin));
    const v = Float32Array.from({ length: 9 * cin * cout }, () => rng.normal() * scale);
    convs.push(tf.variable(tf.tensor4d(v, [3, 3, cin, cout])));
  };
  conv(3, STAGES[0]);
  let cin = STAGES[0];
  for (const cout of STAGES) {
    for (let b = 0; b < BLOCKS; b++) {
      conv(cin, cout);
      conv(cout, cout);
      cin = cout;
    }
  }
  const d = Float32Array.from({ length: cin * 10 }, () => rng.normal() * Math.sqrt(1 / cin));
  return { convs, dense: tf.variable(tf.tensor2d(d, [cin, 10])) };
}

function forward(x: tf.Tensor4D, convs: tf.Variable[], dense: tf.Variable): tf.Tensor2D {
  let i = 0;
  let h: tf.Tensor4D = tf.relu(tf.conv2d(x, convs[i++] as tf.Tensor4D, 1, 'same'));
  let cin = STAGES[0];
  for (const cout of STAGES) {
    for (let b = 0; b < BLOCKS; b++) {
      const stride = b === 0 && cout !== cin ? 2 : 1;
      const a = tf.relu(tf.conv2d(h, convs[i++] as tf.Tensor4D, stride, 'same'));
      const c = tf.conv2d(a, convs[i++] as tf.Tensor4D, 1, 'same');
      // Shortcut: strided subsample and zero-pad channels (ResNet "option A", as in BBN's ResNet-32).
      const skip =
        stride === 1
          ? h
          : tf.pad(tf.avgPool(h, 1, 2, 'valid'), [
              [0, 0],
              [0, 0],
              [0, 0],
              [0, cout - cin],
            ]);
      h = tf.relu(tf.add(c, skip)) as tf.Tensor4D;
      cin = cout;
    }
  }
  return tf.matMul(tf.mean(h, [1, 2]) as tf.Tensor2D, dense);
}

async function child(backend: BackendName, threads: number, batch: number, steps: number): Promise<void> {
  const info = await selectBackend(backend, { threads });
  const rng = Rng.fromSeed('bench-backend-smoke');
  const { convs, dense } = makeWeights(rng);
  const x = tf.tensor4d(
    Float32Array.from({ length: batch * 32 * 32 * 3 }, () => rng.normal()),
    [batch, 32, 32, 3],
  );
  const labels = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: batch }, () => rng.int(10)),
      'int32',
    ),
    10,
  );
  const loss = (xi: tf.Tensor4D) => tf.losses.softmaxCrossEntropy(labels, forward(xi, convs, dense));
  let note = info.reason;
  let step = () =>
    tf.tidy(() => Object.values(tf.variableGrads(() => loss(x) as tf.Scalar).grads)[0].dataSync());
  try {
    step();
  } catch (err) {
    if (!/Conv2DBackpropFilter/.test(String(err))) throw err;
    note = `forward + input gradient only (no Conv2DBackpropFilter kernel); ${note}`;
    step = () =>
      tf.tidy(() =>
        tf
          .grad((xi: tf.Tensor) => loss(xi as tf.Tensor4D))(x)
          .dataSync(),
      );
    step();
  }
  const times: number[] = [];
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    step();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  const secondsPerStep = times[Math.floor(times.length / 2)];
  console.log(JSON.stringify({ batch, secondsPerStep, per128: (secondsPerStep * 128) / batch, note }));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    await child(args[1] as BackendName, Number(args[2]), Number(args[3]), Number(args[4]));
    return;
  }
  const stepsFlag = args.indexOf('--steps');
  const steps = stepsFlag >= 0 ? Number(args[stepsFlag + 1]) : 3;
  // [label, backend, threads, batch, steps]: cpu and wasm get small batches so the run stays short.
  const plan: [string, BackendName, number, number, number][] = [
    ['tensorflow 1 thread', 'tensorflow', 1, 128, steps],
    ['tensorflow 2 threads', 'tensorflow', 2, 128, steps],
    ['wasm', 'wasm', 0, 16, 1],
    ['cpu (pure JS)', 'cpu', 0, 1, 1],
  ];
  const self = fileURLToPath(import.meta.url);
  const results: Result[] = [];
  for (const [label, backend, threads, batch, n] of plan) {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', self, '--child', backend, String(threads), String(batch), String(n)],
      { timeout: 600_000, maxBuffer: 1 << 20 },
    );
    const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as Omit<Result, 'label'>;
    results.push({ label, ...r });
    console.log(
      `${label.padEnd(22)} batch ${String(r.batch).padStart(3)}: ${r.secondsPerStep.toFixed(3)} s/step`,
    );
  }
  const base = results[0].per128;
  console.log('\nper step at batch 128 (scaled linearly from the batch run), ratio to tensorflow 1 thread:');
  for (const r of results) {
    console.log(
      `  ${r.label.padEnd(22)} ${r.per128.toFixed(2).padStart(9)} s   x${(r.per128 / base).toFixed(2)}   ${r.note}`,
    );
  }
}

await main();
