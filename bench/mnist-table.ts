/**
 * The first results table: BBN against the baselines on MNIST-LT at imbalance ratios 100 and 10,
 * same backbone (configs/mnist-lt.yaml), same epochs, seeds 0, 1, 2.
 *
 *   node --import tsx bench/mnist-table.ts [--out bench/results/mnist-lt] [--shard I/N] [--seeds 0,1,2]
 *   node --import tsx bench/mnist-table.ts --table bench/results/mnist-lt     # prints the markdown table
 *
 * Each run writes its own run directory under --out; `--table` aggregates whatever finished
 * (mean ± sample standard deviation over seeds of top-1 and many/medium/few, and wall time).
 * `--shard I/N` runs every N-th job so several processes can share the work.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadRunConfig } from '../src/cli/config-file.ts';
import { selectBackend } from '../src/model/backend.ts';
import { runTraining } from '../src/worker/run.ts';
import type { RunSummary } from '../src/worker/run-dir.ts';

const METHODS = ['ce', 'rw', 'rs', 'drw', 'decouple', 'bbn'] as const;
const RATIOS = [100, 10] as const;

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'bench/results/mnist-lt' },
    shard: { type: 'string', default: '0/1' },
    seeds: { type: 'string', default: '0,1,2' },
    table: { type: 'string' },
  },
});

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) =>
  xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1));
const cell = (xs: (number | null)[]) => {
  const v = xs.filter((x): x is number => x !== null).map((x) => 100 * x);
  return v.length === 0 ? '-' : `${mean(v).toFixed(1)} ± ${sd(v).toFixed(1)}`;
};

function table(dir: string): string {
  const lines = [
    '| IR | method | runs | top-1 % | many % | medium % | few % | wall s |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const ir of RATIOS) {
    for (const method of METHODS) {
      const summaries: RunSummary[] = [];
      for (const name of existsSync(dir) ? readdirSync(dir) : []) {
        const file = join(dir, name, 'summary.json');
        if (name.startsWith(`ir${ir}-${method}-s`) && existsSync(file)) {
          summaries.push(JSON.parse(readFileSync(file, 'utf8')));
        }
      }
      if (summaries.length === 0) continue;
      const last = summaries.map((s) => s.last);
      lines.push(
        `| ${ir} | ${method} | ${summaries.length} | ${cell(last.map((l) => l.top1))} | ${cell(last.map((l) => l.many))} | ` +
          `${cell(last.map((l) => l.medium))} | ${cell(last.map((l) => l.few))} | ${mean(summaries.map((s) => s.seconds)).toFixed(0)} |`,
      );
    }
  }
  return lines.join('\n');
}

if (values.table) {
  process.stdout.write(`${table(values.table)}\n`);
} else {
  const [index, count] = values.shard.split('/').map(Number);
  const seeds = values.seeds.split(',').map(Number);
  const jobs = RATIOS.flatMap((ir) =>
    METHODS.flatMap((method) => seeds.map((seed) => ({ ir, method, seed }))),
  );
  const backend = await selectBackend('auto');
  mkdirSync(values.out, { recursive: true });
  for (const [i, job] of jobs.entries()) {
    if (i % count !== index) continue;
    const dir = join(values.out, `ir${job.ir}-${job.method}-s${job.seed}`);
    if (existsSync(join(dir, 'summary.json'))) continue;
    const cfg = loadRunConfig('configs/mnist-lt.yaml', [
      `method=${job.method}`,
      `seed=${job.seed}`,
      `dataset.imbalanceRatio=${job.ir}`,
      // DRW re-weights from the last lr stage on, as LDAM-DRW does (epoch 160 of 200).
      'train.drwStartEpoch=9',
      // Decoupling: CE for the same epochs, then 3 classifier-only epochs.
      'train.decoupleEpochs=3',
    ]);
    const outcome = await runTraining(cfg, dir, { backend: backend.name });
    if (outcome.kind === 'finished') {
      const l = outcome.summary.last;
      process.stdout.write(
        `${dir}: top-1 ${(100 * l.top1).toFixed(2)} few ${l.few === null ? '-' : (100 * l.few).toFixed(2)}\n`,
      );
    }
  }
  writeFileSync(join(values.out, 'table.md'), `${table(values.out)}\n`);
}
