/**
 * This project's side of the parity bench (docs/parity.md): trains BBN and CE with the project's
 * own trainer on MNIST-LT for many seeds, and exports what the PyTorch mirror (bbn_ref.py) needs
 * to train on the same data, or on this project's own draws (crossed runs).
 *
 *   node --import tsx bench/parity/ours.ts export --out DIR [--seeds 0-9] [--derive sha256|legacy]
 *        [--data-derive sha256|legacy] [size options]
 *   node --import tsx bench/parity/ours.ts train --out FILE.jsonl [--seeds 0-9] [--methods bbn,ce]
 *        [--derive sha256|legacy] [--data-derive sha256|legacy] [--shard I/N] [size options]
 *
 * `--derive` sets the seed/key derivation of the run's own streams (initial weights, plan, crops);
 * `--data-derive` that of the data set (the MNIST-LT subsample and test split, which `loadData`
 * draws from `Rng` too). `sha256` is the shipped derivation, `legacy` the one shipped until issue
 * #19 (derive.ts). They are separate so that a derivation comparison can keep the data fixed: an
 * earlier version of this bench swapped the derivation before loading the data, so its
 * "derivation" arm also trained and evaluated on a different subsample (docs/parity.md).

 * Size options (identical for both implementations; the export records them): --depth 14
 * --width 8 --epochs 12 --milestones 8,11 (the shipped configs/mnist-lt.yaml).
 *
 * `export` writes DIR/data.bin (train and test images, uint8 HWC, and labels), DIR/meta.json (the
 * config, the per-epoch lr and α, class counts, shot thresholds, normalisation) and, per seed,
 * DIR/seed-S/{bbn,ce}-init.bin (initial parameters in PyTorch layout: conv OIHW, linear [out, in])
 * and DIR/seed-S/stream.bin (per epoch: the uniform and reversed plan rows and every row's crop
 * offsets for both branches, exactly as the trainer draws them). `train` appends one JSON line
 * per run: per-epoch train loss, top-1, many, medium, few.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { RunConfig } from '../../src/core/config.ts';
import { epochSchedule } from '../../src/core/epoch-schedule.ts';
import { Rng } from '../../src/core/rng.ts';
import type { LoadedData } from '../../src/data/api.ts';
import { randomCropOffsets } from '../../src/data/augment.ts';
import { loadData } from '../../src/data/load.ts';
import { selectBackend } from '../../src/model/backend.ts';
import { createModel } from '../../src/model/factory.ts';
import { modelSpecFor } from '../../src/worker/run.ts';
import { Trainer } from '../../src/worker/trainer.ts';
import { benchConfig as sizedConfig } from './config.ts';
import { installLegacyDerivation } from './derive.ts';
import { appendJsonl, parseSeeds } from './io.ts';
import { torchShape, toTorchLayout } from './layout.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    out: { type: 'string' },
    seeds: { type: 'string', default: '0-9' },
    methods: { type: 'string', default: 'bbn,ce' },
    derive: { type: 'string', default: 'sha256' },
    'data-derive': { type: 'string', default: 'sha256' },
    shard: { type: 'string', default: '0/1' },
    depth: { type: 'string', default: '14' },
    width: { type: 'string', default: '8' },
    epochs: { type: 'string', default: '12' },
    milestones: { type: 'string', default: '8,11' },
  },
});

/** The run config of a method and seed at the bench's size. */
const benchConfig = (method: string, seed: number): RunConfig => sizedConfig(method, seed, values);

/** Initial parameters of a method/seed, torch layout, with their names and shapes. */
function exportInit(
  cfg: RunConfig,
  data: LoadedData,
): { tensors: { name: string; shape: number[] }[]; bin: Buffer } {
  const model = createModel(modelSpecFor(cfg, data), Rng.fromSeed(cfg.seed).split('init'));
  try {
    const flat = model.getParams();
    const parts = model.layout().map((e) => ({ e, v: toTorchLayout(e, flat) }));
    const bin = Buffer.concat(parts.map((p) => Buffer.from(p.v.buffer, p.v.byteOffset, p.v.byteLength)));
    return { tensors: parts.map((p) => ({ name: p.e.name, shape: torchShape(p.e) })), bin };
  } finally {
    model.dispose();
  }
}

/**
 * The BBN run's stream of a seed, per epoch: uniform rows, reversed rows, then crop (top, left) of
 * every row for stream 0 (uniform branch) and stream 1 (reversed branch): int32 throughout. A CE
 * run of the same seed uses the same plan's uniform rows and stream-0 crops.
 */
function exportStream(cfg: RunConfig, trainer: Trainer, padding: number): Buffer {
  const chunks: Buffer[] = [];
  const root = Rng.fromSeed(cfg.seed);
  for (let epoch = 1; epoch <= cfg.train.epochs; epoch++) {
    const plan = trainer.plan(epoch);
    const B = plan.globalBatch;
    const crops = new Int32Array(2 * plan.steps * B * 2);
    for (let stream = 0; stream < 2; stream++) {
      for (let step = 0; step < plan.steps; step++) {
        const base = root.split('augment').split(epoch).split(step).split(stream);
        for (let i = 0; i < B; i++) {
          const { top, left } = randomCropOffsets(base.split(i), padding);
          const at = 2 * ((stream * plan.steps + step) * B + i);
          crops[at] = top;
          crops[at + 1] = left;
        }
      }
    }
    for (const a of [plan.uniform, plan.reversed, crops])
      chunks.push(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  }
  return Buffer.concat(chunks);
}

async function readAll(ds: LoadedData['train']): Promise<Buffer> {
  const idx = Int32Array.from({ length: ds.size }, (_, i) => i);
  const images = await ds.readImages(idx);
  return Buffer.concat(images.map((im) => Buffer.from(im.data)));
}

/** The project's data at the bench's config, under the chosen data derivation; then installs the run derivation. */
async function loadBenchData(): Promise<LoadedData> {
  for (const [flag, v] of [
    ['--derive', values.derive],
    ['--data-derive', values['data-derive']],
  ] as const) {
    if (v !== 'sha256' && v !== 'legacy') throw new Error(`${flag} must be sha256 or legacy, got ${v}`);
  }
  const restore = values['data-derive'] === 'legacy' ? installLegacyDerivation() : () => {};
  const data = await loadData(benchConfig('bbn', 0).dataset);
  restore();
  if (values.derive === 'legacy') installLegacyDerivation();
  return data;
}

async function doExport(dir: string, seeds: number[]): Promise<void> {
  const data = await loadBenchData();
  const base = benchConfig('bbn', 0);
  const t = data.augment.train;
  if (t.kind !== 'crop_flip' || t.flip) throw new Error('the parity bench expects MNIST crop without flip');
  mkdirSync(dir, { recursive: true });
  const trainX = await readAll(data.train);
  const testX = await readAll(data.test);
  const lab = (a: Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  writeFileSync(
    join(dir, 'data.bin'),
    Buffer.concat([trainX, lab(data.train.labels), testX, lab(data.test.labels)]),
  );
  const schedule = Array.from({ length: base.train.epochs }, (_, i) => epochSchedule(base, i + 1));
  const meta = {
    made: 'bench/parity/ours.ts export',
    size: { depth: base.model.depth, width: base.model.baseWidth, epochs: base.train.epochs },
    imageShape: data.train.imageShape,
    numClasses: data.train.numClasses,
    trainSize: data.train.size,
    testSize: data.test.size,
    trainCounts: data.trainCounts,
    mean: data.augment.mean,
    std: data.augment.std,
    padding: t.padding,
    batchSize: base.train.batchSize,
    evalBatchSize: base.eval.batchSize,
    momentum: base.train.momentum,
    nesterov: base.train.nesterov,
    weightDecay: base.train.weightDecay,
    lr: schedule.map((s) => s.lr),
    alpha: Array.from({ length: base.train.epochs }, (_, i) => epochSchedule(base, i + 1).alpha),
    manyThreshold: base.eval.manyThreshold,
    fewThreshold: base.eval.fewThreshold,
    seeds,
    steps: Math.floor(data.train.size / base.train.batchSize),
  };
  writeFileSync(join(dir, 'meta.json'), `${JSON.stringify(meta, null, 1)}\n`);
  for (const seed of seeds) {
    const sdir = join(dir, `seed-${seed}`);
    mkdirSync(sdir, { recursive: true });
    const layouts: Record<string, unknown> = {};
    for (const method of ['bbn', 'ce']) {
      const cfg = benchConfig(method, seed);
      const { tensors, bin } = exportInit(cfg, data);
      writeFileSync(join(sdir, `${method}-init.bin`), bin);
      layouts[method] = tensors;
    }
    writeFileSync(join(sdir, 'init.json'), `${JSON.stringify(layouts)}\n`);
    const cfg = benchConfig('bbn', seed);
    const model = createModel(modelSpecFor(cfg, data), Rng.fromSeed(seed).split('init'));
    try {
      writeFileSync(join(sdir, 'stream.bin'), exportStream(cfg, new Trainer(cfg, data, model), t.padding));
    } finally {
      model.dispose();
    }
  }
  process.stdout.write(`exported ${seeds.length} seeds to ${dir}\n`);
}

async function doTrain(file: string, seeds: number[]): Promise<void> {
  const data = await loadBenchData();
  await selectBackend('auto');
  const [index, count] = values.shard.split('/').map(Number);
  const methods = values.methods.split(',');
  const jobs = seeds.flatMap((seed) => methods.map((method) => ({ seed, method })));
  for (const [j, { seed, method }] of jobs.entries()) {
    if (j % count !== index) continue;
    const cfg = benchConfig(method, seed);
    const started = performance.now();
    const cpu0 = process.cpuUsage();
    const model = createModel(modelSpecFor(cfg, data), Rng.fromSeed(seed).split('init'));
    const epochs = [];
    try {
      const trainer = new Trainer(cfg, data, model);
      for (let epoch = 1; epoch <= trainer.epochs; epoch++) {
        const r = await trainer.trainEpoch(epoch);
        const e = await trainer.evaluate();
        epochs.push({ epoch, loss: r.trainLoss, top1: e.top1, many: e.many, medium: e.medium, few: e.few });
      }
    } finally {
      model.dispose();
    }
    const cpu = process.cpuUsage(cpu0);
    const row = {
      impl: 'ours',
      variant: `draws=${values.derive},data=${values['data-derive']}`,
      method,
      seed,
      size: { depth: cfg.model.depth, width: cfg.model.baseWidth, epochs: cfg.train.epochs },
      wallSeconds: (performance.now() - started) / 1000,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      epochs,
    };
    appendJsonl(file, row);
    const last = epochs[epochs.length - 1];
    process.stdout.write(
      `ours draws=${values.derive},data=${values['data-derive']} ${method} seed ${seed}: top-1 ${(100 * last.top1).toFixed(1)} ` +
        `(${row.wallSeconds.toFixed(0)} s wall, ${row.cpuSeconds.toFixed(0)} s cpu)\n`,
    );
  }
}

const [command] = positionals;
const seeds = parseSeeds(values.seeds);
if (command === 'export' && values.out) await doExport(values.out, seeds);
else if (command === 'train' && values.out) await doTrain(values.out, seeds);
else {
  process.stderr.write('usage: ours.ts export|train --out PATH [--seeds 0-9] (see the file header)\n');
  process.exit(2);
}
