/**
 * `bbn train`, the README's main job, as users run it: no cluster, no environment variables. It
 * starts its own Temporal dev server (state in the run directory), trains through the workflow,
 * and ends with the weights of the plain in-process trainer. Ctrl-C stops it with a checkpoint;
 * `bbn train --resume DIR` restarts the server on the same state and finishes the run, again
 * bit-identical to an uninterrupted run.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { selectBackend } from '../../src/model/backend.ts';
import { loadLatestGood } from '../../src/worker/checkpoint.ts';
import { runTraining } from '../../src/worker/run.ts';
import { readMetrics, runPaths } from '../../src/worker/run-dir.ts';
import { startTestNats } from '../helpers/servers.ts';
import { tinyConfig, tinyRun } from '../helpers/tiny.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'bbn.mjs');
/** 600 images, 37 steps an epoch: a run long enough to interrupt. */
const EXTRA = { name: 'cli-tiny', dataset: { perClass: 320 }, train: { epochs: 3 } };

const dir = mkdtempSync(join(tmpdir(), 'bbn-train-cli-'));
const configPath = join(dir, 'tiny.yaml');
let reference: Float32Array;

function finalParams(outDir: string): Float32Array {
  const latest = loadLatestGood(runPaths(outDir).checkpoints);
  assert.ok(latest, `a checkpoint in ${outDir}`);
  return latest.checkpoint.sections.params;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `bbn …` with no Temporal variables; `onLine` sees its output lines as they come. */
function bbn(args: string[], onLine?: (line: string, child: ReturnType<typeof spawn>) => void): Promise<Run> {
  const env = { ...process.env };
  for (const k of Object.keys(env))
    if (k.startsWith('BBN_TEMPORAL') || k.startsWith('TEMPORAL_')) delete env[k];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env });
    const text = { stdout: '', stderr: '' };
    for (const stream of ['stdout', 'stderr'] as const) {
      let partial = '';
      child[stream].on('data', (d: Buffer) => {
        text[stream] += d;
        partial += d;
        const lines = partial.split(/\r|\n/);
        partial = lines.pop() ?? '';
        for (const line of lines) onLine?.(line, child);
      });
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ...text });
    });
  });
}

before(async () => {
  writeFileSync(configPath, stringify(tinyRun(EXTRA)));
  const backend = (await selectBackend('auto')).name;
  const ref = join(dir, 'reference');
  await runTraining(tinyConfig(EXTRA), ref, { backend });
  reference = finalParams(ref);
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('bbn train (the embedded local default, through Temporal)', () => {
  it('trains through its own dev server and ends bit-identical to the in-process trainer; with --nats, bbn runs sees it', {
    timeout: 180_000,
  }, async () => {
    const out = join(dir, 'run-a');
    const nats = await startTestNats();
    let runs: Run;
    let r: Run;
    try {
      r = await bbn(['train', '-c', configPath, '-o', out, '--nats', nats.address]);
      runs = await bbn(['runs', '--nats', nats.address]);
    } finally {
      await nats.stop();
    }
    assert.equal(runs.code, 0, runs.stderr);
    assert.match(runs.stdout, /run-a\s+completed\s+3\/3/);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /temporal: dev server on 127\.0\.0\.1:\d+ \(state in .*run-a\/\.temporal\)/);
    assert.match(r.stderr, /run run-a: started/);
    assert.match(r.stdout, /cli-tiny \(bbn\) last\s+3 /);
    assert.ok(existsSync(join(out, '.temporal')), 'the workflow state lives in the run directory');
    assert.deepEqual(finalParams(out), reference);
    assert.deepEqual(
      readMetrics(out).map((m) => m.epoch),
      [1, 2, 3],
    );
  });

  it('Ctrl-C stops with a checkpoint; --resume finishes the run bit-identical', {
    timeout: 240_000,
  }, async () => {
    const out = join(dir, 'run-b');
    let interrupted = false;
    const first = await bbn(['train', '-c', configPath, '-o', out], (line, child) => {
      if (!interrupted && line.startsWith('epoch 1/3 loss')) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    assert.ok(interrupted, `saw epoch 1 end; stderr:\n${first.stderr}`);
    assert.equal(first.code, 130, `stopped by Ctrl-C exits 130; stderr:\n${first.stderr}`);
    assert.match(first.stdout, /stopped; checkpoint .*\nresume with: bbn train --resume /);
    assert.ok(readMetrics(out).length < 3, 'stopped before the end');

    const second = await bbn(['train', '--resume', out]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /cli-tiny \(bbn\) last\s+3 /);
    assert.deepEqual(finalParams(out), reference);
    assert.deepEqual(
      readMetrics(out).map((m) => m.epoch),
      [1, 2, 3],
    );
  });
});
