/**
 * bf16 on the wire, measured (issue 16 item 4): a short W=2 run, the same seed, once with float32
 * and once with bf16 gradients on the wire (`distributed.compressBf16`), each rank a Trainer in
 * this process summing through a real 2-rank RingAllreduce (raw-TCP data plane) on loopback.
 * Prints per epoch the training loss and accuracy of both runs, the test accuracy at the end, and
 * the wire error of bf16: per allreduce, the relative L2 error of the reduced gradient against a
 * float64 sum of the same two ranks' gradients, beside the float32 ring's error.
 *
 *   npm run bench:bf16 -- [--config configs/mnist-lt.yaml] [--epochs 4] [KEY=VALUE ...]
 *
 * Not in CI (minutes of CPU). Both runs are deterministic: same data order, same init.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadRunConfig } from '../src/cli/config-file.ts';
import { CollectiveServer, RingAllreduce } from '../src/collective/index.ts';
import type { RunConfig } from '../src/core/config.ts';
import { Rng } from '../src/core/rng.ts';
import { loadData } from '../src/data/load.ts';
import { selectBackend } from '../src/model/backend.ts';
import { createModel } from '../src/model/factory.ts';
import { modelSpecFor } from '../src/worker/run.ts';
import { type Reducer, Trainer } from '../src/worker/trainer.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    config: { type: 'string', default: 'configs/mnist-lt.yaml' },
    epochs: { type: 'string', default: '4' },
  },
});

/** Relative L2 error of the gradient part of each allreduce, against float64 sums. */
interface WireError {
  sumSq: number;
  refSq: number;
  worstRel: number;
  count: number;
}

async function run(cfg: RunConfig, bf16: boolean) {
  const data = await loadData(cfg.dataset);
  const servers = await Promise.all(
    [0, 1].map(() => CollectiveServer.listen({ host: '127.0.0.1', port: 0 })),
  );
  const peers = servers.map((s) => s.address);
  const rings = await Promise.all(
    servers.map((server, rank) =>
      RingAllreduce.create({
        runId: `bf16-${bf16}`,
        generation: 1,
        rank,
        worldSize: 2,
        peers,
        server,
        compress: bf16 ? 'bf16' : 'none',
        transport: 'tcp',
      }),
    ),
  );
  const err: WireError = { sumSq: 0, refSq: 0, worstRel: 0, count: 0 };
  // Both ranks' gradients of each step, keyed by the step (a rank may run ahead by one step
  // before the other's allreduce returns), to form the float64 reference sum.
  const pending = new Map<string, Float32Array[]>();
  const trainers = [0, 1].map((rank) => {
    const model = createModel(modelSpecFor(cfg, data), Rng.fromSeed(cfg.seed).split('init'));
    const reduce: Reducer = async (buf, tag) => {
      const n = tag.bf16Elements ?? 0;
      const key = `${tag.epoch}/${tag.step}`;
      const mine = pending.get(key) ?? [];
      mine[rank] = buf.slice(0, n);
      pending.set(key, mine);
      await rings[rank].allreduce(buf, tag);
      if (rank === 0) {
        // Both deposits happened before either allreduce could complete.
        const [a, b] = pending.get(key)!;
        pending.delete(key);
        let e2 = 0;
        let r2 = 0;
        for (let i = 0; i < n; i++) {
          const ref = a[i] + b[i];
          e2 += (buf[i] - ref) ** 2;
          r2 += ref ** 2;
        }
        err.sumSq += e2;
        err.refSq += r2;
        err.worstRel = Math.max(err.worstRel, r2 > 0 ? Math.sqrt(e2 / r2) : 0);
        err.count++;
      }
    };
    return { model, trainer: new Trainer(cfg, data, model, { rank, worldSize: 2 }, reduce) };
  });
  const epochs: Array<{ loss: number; accuracy: number }> = [];
  const t0 = performance.now();
  for (let epoch = 1; epoch <= cfg.train.epochs; epoch++) {
    const results = await Promise.all(trainers.map((t) => t.trainer.trainEpoch(epoch)));
    epochs.push({ loss: results[0].trainLoss, accuracy: results[0].trainAccuracy });
  }
  const seconds = (performance.now() - t0) / 1000;
  const evals = await Promise.all(trainers.map((t) => t.trainer.evaluate()));
  const bytes = rings[0].stats().bytesSent;
  await Promise.all(rings.map((r) => r.close()));
  await Promise.all(servers.map((s) => s.close()));
  for (const t of trainers) t.model.dispose();
  return { epochs, evals, err, seconds, bytes };
}

const cfg0 = loadRunConfig(values.config, [`train.epochs=${values.epochs}`, ...positionals]);
await selectBackend(cfg0.compute.backend);
console.log(
  `# bf16 on the wire: ${values.config}, W=2 (two Trainers, one RingAllreduce, transport tcp), seed ${cfg0.seed}, ${cfg0.train.epochs} epochs`,
);
const f32 = await run(cfg0, false);
const b16 = await run({ ...cfg0, distributed: { ...cfg0.distributed, compressBf16: true } }, true);
console.log('\n| epoch | train loss f32 | train loss bf16 | train acc f32 | train acc bf16 |');
console.log('|---|---|---|---|---|');
for (let e = 0; e < f32.epochs.length; e++) {
  const a = f32.epochs[e];
  const b = b16.epochs[e];
  console.log(
    `| ${e + 1} | ${a.loss.toFixed(4)} | ${b.loss.toFixed(4)} | ${a.accuracy.toFixed(4)} | ${b.accuracy.toFixed(4)} |`,
  );
}
const acc = (r: typeof f32) => r.evals[0];
console.log(
  `\n| wire | test top-1 | many / medium / few | ranks agree | wire bytes rank 0 | rel. L2 error of the reduced gradient vs float64 (all steps / worst step) | train s |`,
);
console.log('|---|---|---|---|---|---|---|');
for (const [name, r] of [
  ['float32', f32],
  ['bf16 gradients', b16],
] as const) {
  const e = acc(r);
  const g = (x: number | null): string => (x === null ? '-' : x.toFixed(3));
  const agree = r.evals[1].top1 === e.top1 ? 'yes' : `no (${r.evals[1].top1})`;
  console.log(
    `| ${name} | ${e.top1.toFixed(4)} | ${g(e.many)} / ${g(e.medium)} / ${g(e.few)} | ${agree} | ${(r.bytes / 1e6).toFixed(1)} MB | ${Math.sqrt(r.err.sumSq / r.err.refSq).toExponential(2)} / ${r.err.worstRel.toExponential(2)} | ${r.seconds.toFixed(0)} |`,
  );
}
console.log(`\nTest top-1 bf16 - float32: ${((acc(b16).top1 - acc(f32).top1) * 100).toFixed(2)} points`);
