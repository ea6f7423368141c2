/**
 * Overhead of durable runs: wall time of the same run through the `bbnTraining` workflow (real
 * Temporal dev server, in-process worker, local W=1 deps) against `runTraining`, alternating,
 * in one process. Prints both times, the ratio, and the fixed cost per epoch (what Temporal adds:
 * about five activity round trips and two workflow tasks per epoch), from which the ratio for a
 * real epoch length follows. The workflow bundle is built before timing.
 *
 * usage: node --import tsx bench/orchestration-overhead.ts [--epochs 4] [--per-class 48]
 *          [--image 8] [--width 4] [--repeats 2]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { parseRunConfig } from '../src/core/config.ts';
import { loadData } from '../src/data/load.ts';
import { startTemporalDevServer } from '../src/devservers/index.ts';
import { selectBackend } from '../src/model/backend.ts';
import { rankTaskQueue } from '../src/orchestration/api.ts';
import { startRun } from '../src/orchestration/client.ts';
import { createLocalDeps } from '../src/orchestration/local.ts';
import { createTrainingWorker, trainingWorkflowBundle } from '../src/orchestration/worker.ts';
import { runTraining } from '../src/worker/run.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const epochs = arg('epochs', 4);
const cfg = parseRunConfig({
  name: 'bench-orchestration',
  seed: 3,
  dataset: {
    kind: 'synthetic',
    numClasses: 4,
    perClass: arg('per-class', 48),
    testPerClass: 12,
    imageSize: arg('image', 8),
    channels: 1,
    imbalanceRatio: 8,
  },
  model: { depth: 8, baseWidth: arg('width', 4) },
  train: { epochs, batchSize: 16, lr: 0.05 },
  eval: { batchSize: 32 },
  checkpoint: { keep: 2, everyEpochs: 1 },
});
const repeats = arg('repeats', 2);

Runtime.install({ logger: new DefaultLogger('WARN') });
const backend = (await selectBackend('auto')).name;
const data = await loadData(cfg.dataset);
const server = await startTemporalDevServer();
const bundle = await trainingWorkflowBundle();
const connection = await Connection.connect({ address: server.address });
const native = await NativeConnection.connect({ address: server.address });
const client = new Client({ connection });
const dir = () => mkdtempSync(join(tmpdir(), 'bbn-bench-orch-'));

async function direct(): Promise<number> {
  const t0 = performance.now();
  await runTraining(cfg, dir(), { backend, data });
  return (performance.now() - t0) / 1000;
}

let n = 0;
async function durable(): Promise<number> {
  const runId = `bench-${process.pid}-${++n}`;
  const deps = createLocalDeps();
  const worker = await createTrainingWorker({
    connection: native,
    taskQueue: rankTaskQueue(runId, 0),
    deps,
    workflows: bundle,
  });
  try {
    return await worker.runUntil(async () => {
      const t0 = performance.now();
      const handle = await startRun(client, { runId, config: cfg, outDir: dir(), workers: 1 });
      await handle.result();
      return (performance.now() - t0) / 1000;
    });
  } finally {
    deps.dispose();
  }
}

try {
  await direct(); // warm-up: kernels, data paths
  await durable();
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < repeats; i++) {
    a.push(await direct());
    b.push(await durable());
  }
  const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  const [ta, tb] = [med(a), med(b)];
  console.log(
    `backend ${backend}; ${epochs} epochs of ${Math.floor(data.train.size / 16)} steps; median of ${repeats}`,
  );
  console.log(`runTraining        ${ta.toFixed(3)} s`);
  console.log(`through Temporal   ${tb.toFixed(3)} s`);
  console.log(`ratio              ${(tb / ta).toFixed(3)}  (overhead ${(100 * (tb / ta - 1)).toFixed(1)}%)`);
  console.log(`fixed cost/epoch   ${((1000 * (tb - ta)) / epochs).toFixed(0)} ms`);
} finally {
  await connection.close();
  await native.close();
  await server.stop();
}
