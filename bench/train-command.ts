/**
 * What a user pays for durability: wall time of the README's main job, `bbn train` (embedded
 * Temporal dev server, workflow, every start-up cost included), against `bbn train --no-temporal`
 * on the same config, alternating, as separate processes. With `--workers 2` both sides run two
 * rank processes (Temporal ranks against the plain coordinator launcher).
 *
 * usage: node --import tsx bench/train-command.ts [--config configs/mnist-lt.yaml] [--epochs 2]
 *          [--workers 1] [--repeats 2]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

const config = arg('config', 'configs/mnist-lt.yaml');
const epochs = arg('epochs', '2');
const workers = arg('workers', '1');
const repeats = Number(arg('repeats', '2'));
const BIN = join(import.meta.dirname, '..', 'bin', 'bbn.mjs');

function run(durable: boolean): number {
  const out = mkdtempSync(join(tmpdir(), 'bbn-bench-train-'));
  const args = [BIN, 'train', '-c', config, '-o', out, `train.epochs=${epochs}`];
  if (workers !== '1') args.push('--workers', workers);
  if (!durable) args.push('--no-temporal');
  const t0 = performance.now();
  try {
    execFileSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'ignore'] });
    return (performance.now() - t0) / 1000;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

run(true); // warm-up: caches (workflow bundle, OS file cache)
const plain: number[] = [];
const durable: number[] = [];
for (let i = 0; i < repeats; i++) {
  plain.push(run(false));
  durable.push(run(true));
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const [a, b] = [med(plain), med(durable)];
console.log(`${config}, ${epochs} epochs, ${workers} worker(s); median of ${repeats}; all start-up included`);
console.log(`bbn train --no-temporal   ${a.toFixed(2)} s   (${plain.map((x) => x.toFixed(2)).join(', ')})`);
console.log(`bbn train (Temporal)      ${b.toFixed(2)} s   (${durable.map((x) => x.toFixed(2)).join(', ')})`);
console.log(`ratio                     ${(b / a).toFixed(3)}  (overhead ${(100 * (b / a - 1)).toFixed(1)}%)`);
