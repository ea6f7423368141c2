/**
 * Training speed of durable runs whose ranks compute on a worker thread (W = 1 in this process,
 * W = 2 as rank processes with the coordinator and the ring), against the same problem trained in
 * one process by `runTraining` (compute on the main thread), alternating in one run. Steps per
 * second are rank 0's: steps over the epochs' training seconds from metrics.jsonl (evaluation and
 * start-up excluded), median over repeats; start-up is each run's wall time minus those seconds.
 *
 * usage: node --import tsx bench/compute-thread.ts [--epochs 6] [--repeats 3]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainDurably } from '../src/cli/durable-train.ts';
import { parseRunConfig } from '../src/core/config.ts';
import { loadData } from '../src/data/load.ts';
import { selectBackend } from '../src/model/backend.ts';
import { runTraining } from '../src/worker/run.ts';
import { readMetrics } from '../src/worker/run-dir.ts';
import { tinyRun } from '../test/helpers/tiny.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const epochs = Number(arg('epochs') ?? 6);
const repeats = Number(arg('repeats') ?? 3);
const raw = tinyRun({ name: 'bench-compute-thread', train: { epochs } });
const cfg = parseRunConfig(raw);
const dir = () => mkdtempSync(join(tmpdir(), 'bbn-bench-ct-'));

/** Rank 0's training steps per second over all epochs of the run in `out`. */
function stepsPerSecond(out: string): number {
  const rows = readMetrics(out);
  const steps = rows.reduce((s, m) => s + m.stepsPerSecond * m.seconds, 0);
  return steps / rows.reduce((s, m) => s + m.seconds, 0);
}

const backend = (await selectBackend('auto')).name;
const data = await loadData(cfg.dataset);

async function single(): Promise<number> {
  const out = dir();
  await runTraining(cfg, out, { backend, data });
  return stepsPerSecond(out);
}

async function durable(workers: number): Promise<number> {
  const out = dir();
  await trainDurably({ cfg, outDir: out, workers, resume: false, say: () => {} });
  return stepsPerSecond(out);
}

type Case = [string, () => Promise<number>];
const cases: Case[] = [
  ['runTraining (main thread, one process)', single],
  ['durable W=1 (compute thread)', () => durable(1)],
  ['durable W=2 (rank processes, ring)', () => durable(2)],
];
const results = new Map<string, number[]>(cases.map(([name]) => [name, []]));
await single(); // warm-up: kernels, tsx's transform cache
for (let r = 0; r < repeats; r++) {
  for (const [name, run] of cases) results.get(name)?.push(await run());
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(
  `backend ${backend}; tiny config, ${epochs} epochs of ${Math.floor(data.train.size / cfg.train.batchSize)} steps; median of ${repeats}`,
);
const reference = median(results.get(cases[0][0]) ?? []);
for (const [name, xs] of results) {
  const m = median(xs);
  console.log(
    `${name.padEnd(42)} ${m.toFixed(2)} steps/s  (x${(m / reference).toFixed(2)})  runs ${xs.map((x) => x.toFixed(2)).join(' ')}`,
  );
}
