import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import * as tfCore from '@tensorflow/tfjs-core';
import { Rng } from '../../src/core/rng.ts';
import { availableBackends, BackendError, selectBackend } from '../../src/model/backend.ts';

const GPU_PACKAGE = '@tensorflow/tfjs-node-gpu';
const backendModule = fileURLToPath(new URL('../../src/model/backend.ts', import.meta.url));
const tensorflowEnvModule = fileURLToPath(new URL('../../src/model/tensorflow-env.ts', import.meta.url));

function gpuPackageInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve(GPU_PACKAGE);
    return true;
  } catch {
    return false;
  }
}

/** Seeded values in [-0.5, 0.5), so sums of products stay near 1 and float32 error near 1e-6. */
function values(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.uniform(-0.5, 0.5));
}

/** A matmul and both conv2d gradients (input and filter), on the active backend. */
function computeReference(seed: string): Float32Array[] {
  const rng = Rng.fromSeed(seed);
  const a = values(rng, 16 * 32);
  const b = values(rng, 32 * 8);
  const x = values(rng, 2 * 8 * 8 * 3);
  const w = values(rng, 3 * 3 * 3 * 4);
  const g = values(rng, 2 * 8 * 8 * 4);
  return tf.tidy(() => {
    const product = tf.matMul(tf.tensor2d(a, [16, 32]), tf.tensor2d(b, [32, 8]));
    const upstream = tf.tensor4d(g, [2, 8, 8, 4]);
    const loss = (xi: tf.Tensor, wi: tf.Tensor) =>
      tf.sum(tf.mul(tf.conv2d(xi as tf.Tensor4D, wi as tf.Tensor4D, 1, 'same'), upstream));
    const [dx, dw] = tf.grads(loss)([tf.tensor4d(x, [2, 8, 8, 3]), tf.tensor4d(w, [3, 3, 3, 4])]);
    return [product, dx, dw].map((t) => t.dataSync() as Float32Array);
  });
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** Runs selectBackend('tensorflow', { threads }) in a fresh process; returns its thread count and env. */
async function threadsInFreshProcess(
  threads: number,
): Promise<{ osThreads: number; env: string; reason: string }> {
  const script = `
    const { selectBackend } = await import(${JSON.stringify(pathToFileURL(backendModule).href)});
    const tf = await import('@tensorflow/tfjs');
    const info = await selectBackend('tensorflow', { threads: ${threads} });
    tf.tidy(() => tf.matMul(tf.ones([256, 256]), tf.ones([256, 256])).dataSync());
    const status = (await import('node:fs')).readFileSync('/proc/self/status', 'utf8');
    console.log(JSON.stringify({
      osThreads: Number(status.match(/Threads:\\s+(\\d+)/)[1]),
      env: process.env.TF_NUM_INTRAOP_THREADS + '/' + process.env.TF_NUM_INTEROP_THREADS,
      reason: info.reason,
    }));`;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    { timeout: 60_000, env: { ...process.env, TF_NUM_INTRAOP_THREADS: '', TF_NUM_INTEROP_THREADS: '' } },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

/**
 * In a fresh process with oneDNN's verbose log on, the main thread applies `applyTensorflowEnv` (as
 * a rank's ComputeThread does) and a worker thread selects tensorflow and runs a convolution;
 * returns the oneDNN primitives the worker ran. A worker's own `process.env` never reaches
 * TensorFlow: without the main thread's call the convolution runs on Eigen (no oneDNN convolution).
 */
async function onednnInWorkerThread(): Promise<string[]> {
  const url = (p: string) => JSON.stringify(pathToFileURL(p).href);
  const inWorker = `
    import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
      .then(({ register }) => { register(); return import(${url(backendModule)}); })
      .then(async ({ selectBackend }) => {
        await selectBackend('tensorflow');
        const tf = await import(${JSON.stringify(import.meta.resolve('@tensorflow/tfjs'))});
        tf.conv2d(tf.ones([1, 8, 8, 3]), tf.ones([3, 3, 3, 4]), 1, 'same').dataSync();
      });`;
  const script = `
    const { applyTensorflowEnv } = await import(${url(tensorflowEnvModule)});
    const { Worker } = await import('node:worker_threads');
    applyTensorflowEnv(1);
    const worker = new Worker(${JSON.stringify(inWorker)}, { eval: true });
    await new Promise((resolve, reject) => worker.on('exit', resolve).on('error', reject));`;
  const env: NodeJS.ProcessEnv = { ...process.env, ONEDNN_VERBOSE: '1' };
  delete env.TF_ENABLE_ONEDNN_OPTS;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    { timeout: 60_000, env },
  );
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('onednn_verbose,exec,cpu,'))
    .map((l) => l.split(',')[3]);
}

describe('backend selection', () => {
  it('auto picks tensorflow once set up (wasm only where native set-up was skipped)', async () => {
    const info = await selectBackend('auto');
    if (process.env.BBN_SKIP_NATIVE === '1' && info.name === 'wasm') {
      assert.match(info.tried.find((t) => t.name === 'tensorflow')?.error ?? '', /tfjs_binding|tfjs-node/);
    } else {
      assert.equal(info.name, 'tensorflow', `auto chose ${info.name}: ${info.reason}`);
      assert.equal(info.package, '@tensorflow/tfjs-node');
      assert.match(info.reason, /TensorFlow 2\.15\.1 on CPU/);
    }
    assert.equal(tf.getBackend(), info.engine);
    assert.equal(info.tried.at(-1)?.name, info.name);
    assert.equal(info.tried.at(-1)?.error, undefined);
    if (!gpuPackageInstalled()) {
      assert.deepEqual(info.tried[0], { name: 'tensorflow-gpu', error: `${GPU_PACKAGE} is not installed` });
    }
  });

  it('matmul and conv2d gradients on the chosen backend equal the cpu backend within 1e-5', async () => {
    await selectBackend('cpu');
    const reference = computeReference('backend-numerics');
    const chosen = await selectBackend('auto');
    assert.notEqual(chosen.engine, 'cpu');
    const got = computeReference('backend-numerics');
    ['matmul', 'conv2d dx', 'conv2d dw'].forEach((what, i) => {
      const diff = maxAbsDiff(got[i], reference[i]);
      assert.ok(diff <= 1e-5, `${what} on ${chosen.engine} differs from cpu by ${diff}`);
    });
    // The check is not vacuous: the outputs are not all zero.
    assert.ok(reference.every((r) => r.some((v) => Math.abs(v) > 0.1)));
  });

  it('model code importing @tensorflow/tfjs or @tensorflow/tfjs-core computes on the selected backend', async () => {
    await selectBackend('tensorflow');
    assert.equal(tf.getBackend(), 'tensorflow');
    assert.equal(tfCore.getBackend(), 'tensorflow');
    assert.equal(tfCore.engine(), tf.engine());
    assert.equal(tfCore.engine().backend.constructor.name, 'NodeJSKernelBackend');
    const dw = tfCore.tidy(() => {
      const x = tfCore.ones([1, 4, 4, 1]) as tfCore.Tensor4D;
      const grad = tfCore.grad((w: tfCore.Tensor) =>
        tfCore.sum(tfCore.conv2d(x, w as tfCore.Tensor4D, 1, 'valid')),
      );
      return Array.from(grad(tfCore.ones([3, 3, 1, 1])).dataSync());
    });
    // Each filter tap sees the 2x2 valid output positions of an all-ones input: 4 everywhere.
    assert.deepEqual(dw, Array(9).fill(4));
  });

  for (const name of ['cpu', 'wasm', 'tensorflow', 'cpu'] as const) {
    it(`forcing ${name} makes it the active backend and it computes`, async () => {
      const info = await selectBackend(name);
      assert.equal(info.name, name);
      assert.equal(tf.getBackend(), name);
      assert.deepEqual(info.tried, [{ name }]);
      const product = tf.tidy(() =>
        Array.from(tf.matMul(tf.eye(3), tf.tensor2d([[1, 2, 3]]).transpose()).dataSync()),
      );
      assert.deepEqual(product, [1, 2, 3]);
    });
  }

  it('availableBackends lists the loadable backends and leaves the active one alone', async () => {
    await selectBackend('wasm');
    const names = await availableBackends();
    assert.equal(tf.getBackend(), 'wasm');
    for (const name of ['tensorflow', 'wasm', 'cpu'] as const)
      assert.ok(names.includes(name), `${name} in ${names}`);
    assert.equal(names.includes('tensorflow-gpu'), false, 'no GPU on this machine');
  });

  it('a thread count cannot change once TensorFlow is loaded, and bad options name the field', async () => {
    await assert.rejects(selectBackend('tensorflow', { threads: 3 }), (err: unknown) => {
      assert.ok(err instanceof BackendError);
      assert.match(err.message, /already loaded .* threads=3 needs a new process/);
      return true;
    });
    await assert.rejects(
      selectBackend('tensorflow', { threads: -1 }),
      /SelectBackendOptions\.threads \(-1\)/,
    );
    await assert.rejects(selectBackend('tpu' as 'cpu'), /backend 'tpu' is unknown/);
  });

  it('threads are set before TensorFlow loads: 2 threads start more OS threads than 1', async () => {
    const [one, two] = await Promise.all([threadsInFreshProcess(1), threadsInFreshProcess(2)]);
    assert.equal(one.env, '1/1');
    assert.equal(two.env, '2/2');
    assert.match(one.reason, /on CPU, 1 thread$/);
    assert.ok(two.osThreads > one.osThreads, `threads: ${one.osThreads} with 1, ${two.osThreads} with 2`);
  });

  it("a worker thread's TensorFlow runs oneDNN convolutions once its starter applied the environment", async () => {
    const primitives = await onednnInWorkerThread();
    assert.ok(
      primitives.includes('convolution'),
      `oneDNN primitives run: ${primitives.join(', ') || 'none'}`,
    );
  });

  // Last: where the GPU package is installed, loading it would claim the 'tensorflow' name.
  it('forcing tensorflow-gpu fails with a BackendError naming the package and the fix', async () => {
    const before = tf.getBackend();
    if (gpuPackageInstalled()) {
      // Installed (e.g. by setup-tfjs.sh --gpu), but the 'tensorflow' backend here is tfjs-node's.
      await assert.rejects(selectBackend('tensorflow-gpu'), /@tensorflow\/tfjs-node already provides/);
      return;
    }
    await assert.rejects(selectBackend('tensorflow-gpu'), (err: unknown) => {
      assert.ok(err instanceof BackendError);
      assert.equal(err.preference, 'tensorflow-gpu');
      assert.match(err.message, /@tensorflow\/tfjs-node-gpu is not installed/);
      assert.match(err.message, /scripts\/setup-tfjs\.sh --gpu/);
      assert.deepEqual(err.tried, [{ name: 'tensorflow-gpu', error: `${GPU_PACKAGE} is not installed` }]);
      return true;
    });
    assert.equal(tf.getBackend(), before, 'a failed selection leaves the active backend alone');
  });
});
