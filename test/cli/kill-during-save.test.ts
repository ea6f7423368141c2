/**
 * Kill during checkpoint save, proven to land mid-write (FAILURE-LESSONS 8). A real `bbn train`
 * process is paused by the writer's fault point (BBN_FAULT_PAUSE_CHECKPOINT_WRITE=2: the epoch-2
 * checkpoint's first half fsynced to its temporary file, announced on stderr) and SIGKILLed there.
 * The test checks the half-written file on disk before the kill, then that it is never chosen:
 * not listed, not resumed from (the resume continues from epoch 1's checkpoint, which is byte for
 * byte what it was, and ends with the weights of an uninterrupted run), and refused by `bbn eval`.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { selectBackend } from '../../src/model/backend.ts';
import { checkpointFileName, listCheckpoints, loadLatestGood } from '../../src/worker/checkpoint.ts';
import { runTraining } from '../../src/worker/run.ts';
import { runPaths } from '../../src/worker/run-dir.ts';
import { tempDir } from '../helpers/run-fixture.ts';
import { tinyConfig, tinyRun } from '../helpers/tiny.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'bbn.mjs');
const EXTRA = { name: 'kill-save', train: { epochs: 2 } };
let configPath: string;
let reference: Float32Array;

before(async () => {
  const root = tempDir('bbn-kill-save-');
  configPath = join(root, 'tiny.yaml');
  writeFileSync(configPath, stringify(tinyRun(EXTRA)));
  const ref = join(root, 'reference');
  await runTraining(tinyConfig(EXTRA), ref, { backend: (await selectBackend('auto')).name });
  const latest = loadLatestGood(runPaths(ref).checkpoints);
  assert.ok(latest);
  reference = latest.checkpoint.sections.params;
});

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

interface Paused {
  readonly written: number;
  readonly total: number;
  readonly temporary: string;
  /** Taken while the writer is paused, before the kill. */
  readonly sizeOnDisk: number;
  readonly epoch1Digest: string;
}

/** This environment without Temporal addresses: `bbn train` starts its own dev server, as for a user. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const k of Object.keys(env))
    if (k.startsWith('BBN_TEMPORAL') || k.startsWith('TEMPORAL_')) delete env[k];
  return env;
}

/** Runs `bbn train` until its writer pauses mid-checkpoint, checks the disk there, SIGKILLs it. */
function trainUntilPausedThenKill(
  out: string,
  mode: string[],
): Promise<{ paused: Paused; signal: string | null }> {
  const child = spawn(process.execPath, [BIN, 'train', ...mode, '-c', configPath, '-o', out], {
    cwd: ROOT,
    env: userEnv({ BBN_FAULT_PAUSE_CHECKPOINT_WRITE: '2' }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let paused: Paused | undefined;
    let text = '';
    child.stderr.on('data', (d: Buffer) => {
      text += d;
      const m = /bbn-fault: checkpoint write paused after (\d+) of (\d+) bytes in (\S+)\n/.exec(text);
      if (!m || paused) return;
      const epoch1 = join(runPaths(out).checkpoints, checkpointFileName(1));
      paused = {
        written: Number(m[1]),
        total: Number(m[2]),
        temporary: m[3],
        sizeOnDisk: statSync(m[3]).size,
        epoch1Digest: sha(epoch1),
      };
      child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      if (paused) resolve({ paused, signal });
      else reject(new Error(`bbn train ended without pausing in a checkpoint write:\n${text}`));
    });
  });
}

/** The two ways `bbn train` writes checkpoints: the Temporal default (on the rank's compute thread) and in-process. */
const MODES: { readonly name: string; readonly flags: string[] }[] = [
  { name: 'the Temporal default (compute thread)', flags: [] },
  { name: '--no-temporal (in process)', flags: ['--no-temporal'] },
];

describe('kill during checkpoint save', () => {
  for (const mode of MODES) {
    it(`${mode.name}: SIGKILL mid-write; the partial file is never chosen, the last good checkpoint is intact, resume ends bit-identical`, {
      timeout: 240_000,
    }, async () => {
      const out = join(tempDir(), 'run');
      const { paused, signal } = await trainUntilPausedThenKill(out, mode.flags);
      assert.equal(signal, 'SIGKILL');
      // Mid-write, proven: the first half was on disk, the rest was not, when the kill was sent.
      assert.ok(paused.written > 0 && paused.written < paused.total, JSON.stringify(paused));
      assert.equal(paused.sizeOnDisk, paused.written);
      const ckpts = runPaths(out).checkpoints;
      assert.ok(paused.temporary.startsWith(join(ckpts, checkpointFileName(2))), paused.temporary);

      // After the kill: the partial file is still there, under no checkpoint name.
      assert.equal(statSync(paused.temporary).size, paused.written);
      assert.equal(existsSync(join(ckpts, checkpointFileName(2))), false);
      assert.deepEqual(listCheckpoints(ckpts), [checkpointFileName(1)]);
      assert.equal(sha(join(ckpts, checkpointFileName(1))), paused.epoch1Digest, 'epoch 1 untouched');

      // bbn eval refuses the partial file, naming it.
      const ev = spawnSync(process.execPath, [BIN, 'eval', '--checkpoint', paused.temporary], {
        cwd: ROOT,
        env: userEnv(),
        encoding: 'utf8',
      });
      assert.equal(ev.status, 2, ev.stderr);
      assert.match(ev.stderr, /^bbn: .*\.bbnckpt\.tmp-\d+.*\n$/);

      // The resume continues from epoch 1 (the killed process's lock is stale) and ends as an uninterrupted run.
      const r = spawnSync(process.execPath, [BIN, 'train', ...mode.flags, '--resume', out], {
        cwd: ROOT,
        env: userEnv(),
        encoding: 'utf8',
        timeout: 180_000,
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`resuming from .*${checkpointFileName(1)} \\(epoch 2( step 0)?\\)`));
      assert.doesNotMatch(r.stderr, /skipped bad checkpoint/, 'the partial file was not even considered');
      const latest = loadLatestGood(ckpts);
      assert.ok(latest);
      assert.equal(latest.path, join(ckpts, checkpointFileName(2)));
      assert.deepEqual(latest.checkpoint.sections.params, reference);
    });
  }
});
