import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { LoadedData } from '../../src/data/api.ts';
import { loadData } from '../../src/data/load.ts';
import { selectBackend } from '../../src/model/backend.ts';
import { listCheckpoints, loadLatestGood } from '../../src/worker/checkpoint.ts';
import { runTraining } from '../../src/worker/run.ts';
import { readMetrics, runPaths } from '../../src/worker/run-dir.ts';
import { tinyConfig } from '../helpers/tiny.ts';

const tempDir = () => mkdtempSync(join(tmpdir(), 'bbn-train-'));
let backend = 'cpu';
let data: LoadedData;

before(async () => {
  backend = (await selectBackend('auto')).name;
  data = await loadData(tinyConfig().dataset);
});

function finalParams(dir: string): Float32Array {
  const latest = loadLatestGood(runPaths(dir).checkpoints);
  assert.ok(latest, `a checkpoint in ${dir}`);
  return latest.checkpoint.sections.params;
}

describe('single-process trainer', () => {
  it('trains: loss falls, and config, metrics, checkpoints and summary are written with their fields', async () => {
    const dir = tempDir();
    const cfg = tinyConfig();
    const outcome = await runTraining(cfg, dir, { backend, data });
    assert.equal(outcome.kind, 'finished');
    const rows = readMetrics(dir);
    assert.deepEqual(
      rows.map((r) => r.epoch),
      [1, 2, 3, 4],
    );
    for (const key of [
      'epoch',
      'alpha',
      'lr',
      'trainLoss',
      'trainAccuracy',
      'testTop1',
      'perClass',
      'many',
      'medium',
      'few',
      'seconds',
    ]) {
      assert.ok(key in rows[0], `metrics.jsonl has ${key}`);
    }
    assert.deepEqual(
      rows.map((r) => r.alpha),
      [1, 1 - 1 / 16, 1 - 4 / 16, 1 - 9 / 16],
      'parabolic decay, code convention, div_epoch = 4',
    );
    const lrs = [0.05, 0.05, 0.05, 0.005]; // torch-1.0.1 convention: the first decayed epoch is milestone + 1
    for (const [i, r] of rows.entries())
      assert.ok(Math.abs(r.lr - lrs[i]) < 1e-12, `lr(${r.epoch}) = ${r.lr}`);
    // BBN's loss rises again as α decays and the reversed (tail-heavy) batches weigh in, so by
    // epoch 4 (α = 0.44) it is often back above epoch 1's (issue #19: 12 of 20 seeds); from epoch 1
    // to 2 (α = 1 → 0.94, mostly the uniform branch's CE) it fell by ≥ 30% in all 20 seeds checked.
    assert.ok(
      rows[1].trainLoss < 0.9 * rows[0].trainLoss,
      `loss falls from epoch 1 to 2: ${rows.map((r) => r.trainLoss.toFixed(3))}`,
    );
    assert.equal(rows[0].perClass.length, 4);
    const summary = JSON.parse(readFileSync(runPaths(dir).summary, 'utf8'));
    assert.equal(summary.last.epoch, 4);
    assert.ok(summary.best.top1 >= summary.last.top1);
    assert.ok(Math.abs(summary.last.top1Error - 100 * (1 - rows[3].testTop1)) < 1e-9);
    assert.ok(summary.best.top1 > 0.25, `beats chance (25%): ${summary.best.top1}`);
    assert.match(readFileSync(runPaths(dir).config, 'utf8'), /method: bbn/);
    assert.equal(listCheckpoints(runPaths(dir).checkpoints).length, 4);
  });

  it('a run stopped mid-epoch and resumed ends with the same weights as an uninterrupted run', async () => {
    const cfg = tinyConfig({ train: { epochs: 3 } });
    const whole = tempDir();
    await runTraining(cfg, whole, { backend, data });
    const split = tempDir();
    let steps = 0;
    const first = await runTraining(cfg, split, {
      backend,
      data,
      hooks: { onStep: () => steps++, shouldStop: () => steps >= 7 },
    });
    assert.equal(first.kind, 'stopped');
    assert.deepEqual(
      first.kind === 'stopped' && [first.epoch, first.step],
      [1, 2],
      'stopped inside epoch 2 (5 steps per epoch)',
    );
    const second = await runTraining(cfg, split, { backend, data, resume: true });
    assert.equal(second.kind, 'finished');
    assert.deepEqual(finalParams(split), finalParams(whole), 'bit-identical weights');
    assert.deepEqual(
      readMetrics(split).map((r) => [r.epoch, r.trainLoss, r.testTop1]),
      readMetrics(whole).map((r) => [r.epoch, r.trainLoss, r.testTop1]),
    );
  });

  it('every method trains for a couple of steps with finite losses', async () => {
    for (const method of ['bbn', 'ce', 'rw', 'rs', 'drw', 'decouple']) {
      const cfg = tinyConfig({ method, train: { epochs: 1, drwStartEpoch: 1, decoupleEpochs: 1 } });
      const losses: number[] = [];
      const outcome = await runTraining(cfg, tempDir(), {
        backend,
        data,
        hooks: { onStep: (r) => losses.push(r.loss) },
      });
      assert.equal(outcome.kind, 'finished', method);
      assert.ok(losses.length >= 2 && losses.every(Number.isFinite), `${method}: ${losses}`);
    }
  });
});

describe('bbn train command', () => {
  const cli = join(process.cwd(), 'bin/bbn.mjs');
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });

  function writeConfig(extra: Record<string, unknown> = {}): string {
    const file = join(tempDir(), 'run.yaml');
    const cfg = tinyConfig();
    writeFileSync(file, stringify({ ...cfg, ...extra }));
    return file;
  }

  it('bad configs stop before training with a message naming the field', async () => {
    const file = writeConfig();
    const cases: [string[], RegExp][] = [
      [['method=focal'], /method: .*"focal"/],
      [['train.lr=-0.1'], /train\.lr/],
      [['dataset.imbalanceRatio=0.5'], /dataset\.imbalanceRatio/],
      [['train.batchSize=100000'], /train\.batchSize \(100000\) is larger than the training set/],
      [['train.lrSchedule.name=exponential'], /train\.lrSchedule\.name/],
      [['train.alpha.schedule=sigmoid'], /train\.alpha\.schedule/],
      [['dataset.kind=cifar10', 'dataset.root=/nonexistent/cifar'], /\/nonexistent\/cifar/],
      [['train.lerning_rate=0.1'], /lerning_rate: unknown key/],
    ];
    const results = await Promise.all(
      cases.map(([o]) => run(['train', '--config', file, '--out', tempDir(), ...o])),
    );
    for (const [i, r] of results.entries()) {
      assert.equal(r.code, 2, `${cases[i][0]}: exit 2, got ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, cases[i][1]);
      assert.match(r.stderr, /^bbn: /m);
      assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
    }
  });

  it('a run killed with SIGKILL resumes from its last checkpoint to the same final weights', async () => {
    const file = writeConfig();
    const whole = tempDir();
    const a = await run(['train', '--config', file, '--out', whole]);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /tiny \(bbn\) last/);
    const killed = tempDir();
    const child = spawn(process.execPath, [cli, 'train', '--config', file, '--out', killed], {
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const timer = setInterval(() => {
      if (listCheckpoints(runPaths(killed).checkpoints).length >= 2) child.kill('SIGKILL');
    }, 20);
    await exited;
    clearInterval(timer);
    assert.ok(!existsSync(runPaths(killed).summary), 'killed before the end');
    const b = await run(['train', '--resume', killed]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /resuming from .*ckpt-e/);
    assert.deepEqual(finalParams(killed), finalParams(whole));
    assert.deepEqual(
      readMetrics(killed).map((r) => [r.epoch, r.trainLoss, r.testTop1]),
      readMetrics(whole).map((r) => [r.epoch, r.trainLoss, r.testTop1]),
      'metrics after a resume at an epoch boundary equal the uninterrupted run',
    );
  });
});
