/**
 * The run directory's lock against every command, while a real `bbn train` holds it: the holder
 * is held still by the checkpoint writer's fault point (paused mid-write of epoch 2, announced on
 * stderr: a latch, not a timer). Every command that would write into the directory is refused
 * with one line naming the holder (`bbn train --resume` on both paths, `--force`, `bbn launch
 * --out DIR`), and the read-only ones (`bbn status DIR`, `bbn eval`, `bbn report`, `bbn data`)
 * work and say it is being trained. The lock and every file are unchanged afterwards.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { checkpointFileName } from '../../src/worker/checkpoint.ts';
import { runPaths } from '../../src/worker/run-dir.ts';
import { lockPath } from '../../src/worker/run-lock.ts';
import { digestTree, tempDir } from '../helpers/run-fixture.ts';
import { tinyRun } from '../helpers/tiny.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'bbn.mjs');
let configPath: string;
let out: string;
let holder: ChildProcess;
let lockText: string;
let digest: Record<string, string>;

function userEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env))
    if (k.startsWith('BBN_TEMPORAL') || k.startsWith('TEMPORAL_')) delete env[k];
  return env;
}

const bbn = (args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: userEnv(),
    encoding: 'utf8',
    timeout: 120_000,
  });

before(async () => {
  const root = tempDir('bbn-lock-');
  configPath = join(root, 'tiny.yaml');
  writeFileSync(configPath, stringify(tinyRun({ name: 'locked', train: { epochs: 2 } })));
  out = join(root, 'run');
  holder = spawn(process.execPath, [BIN, 'train', '--no-temporal', '-c', configPath, '-o', out], {
    cwd: ROOT,
    env: { ...userEnv(), BBN_FAULT_PAUSE_CHECKPOINT_WRITE: '2' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let text = '';
    holder.stderr?.on('data', (d: Buffer) => {
      text += d;
      if (text.includes('bbn-fault: checkpoint write paused')) resolve();
    });
    holder.on('close', () => reject(new Error(`bbn train ended before it paused:\n${text}`)));
  });
  lockText = readFileSync(lockPath(out), 'utf8');
  digest = digestTree(out);
});

after(() => {
  holder?.kill('SIGKILL');
});

const IN_USE = (pid: number) =>
  new RegExp(
    `^bbn: run directory .* is in use by process ${pid} \\(since .*\\); wait for it to end or stop it\\n$`,
  );

describe('the run lock while bbn train trains', () => {
  it('the lock names the training process', () => {
    assert.equal(JSON.parse(lockText).pid, holder.pid);
  });

  const writers: { name: string; args: () => string[]; expect: () => RegExp }[] = [
    {
      name: 'bbn train --no-temporal --resume DIR',
      args: () => ['train', '--no-temporal', '--resume', out],
      expect: () => IN_USE(holder.pid ?? -1),
    },
    {
      name: 'bbn train --resume DIR (the Temporal default)',
      args: () => ['train', '--resume', out],
      expect: () => IN_USE(holder.pid ?? -1),
    },
    {
      name: 'bbn train --force -o DIR',
      args: () => ['train', '--force', '-c', configPath, '-o', out],
      expect: () =>
        new RegExp(
          `^bbn: .* holds a run that process ${holder.pid} on .* is training; --force does not move a live run\\n$`,
        ),
    },
    {
      name: 'bbn launch --local-worker --resume --out DIR (refused before it dials Temporal)',
      args: () => [
        'launch',
        '--config',
        configPath,
        '--out',
        out,
        '--resume',
        '--local-worker',
        '--temporal',
        '127.0.0.1:9',
      ],
      expect: () => IN_USE(holder.pid ?? -1),
    },
  ];
  for (const w of writers) {
    it(`${w.name} is refused, naming the holder`, () => {
      const r = bbn(w.args());
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, w.expect());
    });
  }

  it('bbn status DIR says which process trains it', () => {
    const r = bbn(['status', out, '--temporal', '127.0.0.1:9']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`: running \\(process ${holder.pid} on .* trains it, since .*\\), epoch 2/2`),
    );
  });

  it('bbn eval of the last checkpoint works', () => {
    const r = bbn(['eval', '--checkpoint', join(runPaths(out).checkpoints, checkpointFileName(1))]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\(epoch 1\) on synthetic-test/);
  });

  it('bbn data of the run config works', () => {
    const r = bbn(['data', '--config', runPaths(out).config]);
    assert.equal(r.status, 0, r.stderr);
  });

  it('bbn report DIR reads without writing (the run is not finished: reported from the epochs it trained)', () => {
    const r = bbn(['report', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /is unfinished \(trained \d+ epoch\(s\)\)/);
  });

  it('afterwards: the lock and every file of the run are as they were', () => {
    assert.equal(readFileSync(lockPath(out), 'utf8'), lockText);
    assert.deepEqual(digestTree(out), digest);
  });
});
