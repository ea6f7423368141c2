/**
 * Training speed of distributed ranks that compute on a worker thread, against the same problem
 * trained in one process by `runTraining` (compute on the main thread), alternating in one run.
 * Steps per second are rank 0's: steps over the epochs' training seconds from metrics.jsonl
 * (evaluation and start-up excluded), median over repeats.
 *
 * With `--baseline DIR` (a checkout whose workers compute on their main thread, e.g. the commit
 * before the compute thread with this tree's node_modules linked in) its `bin/bbn.mjs worker` runs
 * the same launches as a second contrast.
 *
 * usage: node --import tsx bench/compute-thread.ts [--epochs 6] [--repeats 3] [--baseline DIR]
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { launchLocal } from '../src/cli/launcher.ts';
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
const baseline = arg('baseline');
const raw = tinyRun({ name: 'bench-compute-thread', train: { epochs } });
const cfg = parseRunConfig(raw);
const dir = () => mkdtempSync(join(tmpdir(), 'bbn-bench-ct-'));
const configPath = join(dir(), 'tiny.yaml');
writeFileSync(configPath, stringify(raw));

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

async function launched(workers: number, command?: string[]): Promise<number> {
  const out = dir();
  await launchLocal({ configPath, outDir: out, workers, workerCommand: command, onLine: () => {} });
  return stepsPerSecond(out);
}

const base = baseline ? [process.execPath, join(resolve(baseline), 'bin', 'bbn.mjs'), 'worker'] : undefined;
type Case = [string, () => Promise<number>];
const contrast = (workers: number): Case[] =>
  base ? [[`W=${workers} ranks on the main thread (baseline)`, () => launched(workers, base)]] : [];
const cases: Case[] = [
  ['runTraining (main thread, one process)', single],
  ['W=1 ranks on a compute thread', () => launched(1)],
  ...contrast(1),
  ['W=2 ranks on a compute thread', () => launched(2)],
  ...contrast(2),
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
