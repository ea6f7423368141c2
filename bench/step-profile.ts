/**
 * Where a BBN-ResNet-32 step's time goes on the TensorFlow backend: one step (after a warm-up)
 * under `tf.profile`, its kernels summed by name (count, kernel milliseconds, share), beside the
 * step's wall and CPU time without the profiler. Kernel times are wall times of each eager op, so
 * on a loaded machine read the shares, not the milliseconds.
 *
 * usage: node --import tsx bench/step-profile.ts [--threads 1] [--batch 128] [--steps 3]
 *   (TF_ENABLE_ONEDNN_OPTS=0 in the environment profiles TensorFlow's Eigen kernels instead of oneDNN)
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../src/core/rng.ts';
import { selectBackend } from '../src/model/backend.ts';
import { arg, bbnResNet32, randomBbnBatch } from './bbn-step-fixture.ts';

const threads = Number(arg('threads', '1'));
const batch = Number(arg('batch', '128'));
const steps = Number(arg('steps', '3'));
const info = await selectBackend('tensorflow', { threads });
const model = bbnResNet32();
const b = randomBbnBatch(batch, Rng.fromSeed('bench'));
const out = new Float32Array(model.numParams);
model.step(b, 0.7, { out }); // warm-up

const c0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < steps; i++) model.step(b, 0.7, { out });
const wallMs = (performance.now() - t0) / steps;
const cpu = process.cpuUsage(c0);
const cpuMs = (cpu.user + cpu.system) / 1000 / steps;
console.log(
  `BBN-ResNet-32 step ${batch}+${batch}, ${info.reason}; TF_ENABLE_ONEDNN_OPTS=${process.env.TF_ENABLE_ONEDNN_OPTS}`,
);
console.log(
  `step without the profiler (mean of ${steps}): wall ${wallMs.toFixed(0)} ms, CPU ${cpuMs.toFixed(0)} ms`,
);

const profile = await tf.profile(() => {
  model.step(b, 0.7, { out });
});
const byName = new Map<string, { ms: number; n: number }>();
for (const k of profile.kernels) {
  const e = byName.get(k.name) ?? { ms: 0, n: 0 };
  e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
  e.n++;
  byName.set(k.name, e);
}
const rows = [...byName.entries()].sort((x, y) => y[1].ms - x[1].ms);
const total = rows.reduce((s, [, e]) => s + e.ms, 0);
console.log(
  `\n${profile.kernels.length} kernels, ${total.toFixed(0)} kernel ms ('forward' = the custom-gradient ops: BatchNorm, ReLU)`,
);
console.log('kernel                        count   kernel ms   share');
for (const [name, e] of rows.filter(([, e]) => e.ms / total >= 0.002)) {
  console.log(
    `${name.padEnd(28)} ${String(e.n).padStart(6)} ${e.ms.toFixed(1).padStart(11)} ${((100 * e.ms) / total).toFixed(1).padStart(6)}%`,
  );
}
model.dispose();
