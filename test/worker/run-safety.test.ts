/**
 * Run-directory safety (FAILURE-LESSONS 15): a run directory has an identity, a lock and one way
 * to be restored. Nothing here writes into a run it could not restore, and a refused request
 * leaves every file of the good run as it was.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { LoadedData } from '../../src/data/api.ts';
import { loadData } from '../../src/data/load.ts';
import { selectBackend } from '../../src/model/backend.ts';
import type { RankControl } from '../../src/orchestration/activities.ts';
import { createLocalDeps } from '../../src/orchestration/local.ts';
import {
  CheckpointError,
  checkpointFileName,
  decodeCheckpoint,
  encodeCheckpoint,
  listCheckpoints,
} from '../../src/worker/checkpoint.ts';
import { runTraining } from '../../src/worker/run.ts';
import { claimRunDir } from '../../src/worker/run-claim.ts';
import { runPaths } from '../../src/worker/run-dir.ts';
import { RunDirError } from '../../src/worker/run-dir-error.ts';
import { readRunIdentity } from '../../src/worker/run-identity.ts';
import { acquireRunLock, lockPath } from '../../src/worker/run-lock.ts';
import { copyRun, digestTree, FIXTURE_RUN, tempDir, trainFixture } from '../helpers/run-fixture.ts';
import { tinyConfig } from '../helpers/tiny.ts';

let good: string;
let other: string;
let backend: string;
let data: LoadedData;
const cfg = tinyConfig(FIXTURE_RUN);

before(async () => {
  backend = (await selectBackend('auto')).name;
  data = await loadData(cfg.dataset);
  good = (await trainFixture()).dir;
  other = (await trainFixture()).dir; // the same config, another run
});

const ckpt = (dir: string, epoch: number) => join(runPaths(dir).checkpoints, checkpointFileName(epoch));

/** Rewrites a checkpoint file with `edit` applied, keeping it well-formed (a valid checksum). */
function rewrite(
  path: string,
  edit: (c: ReturnType<typeof decodeCheckpoint>) => ReturnType<typeof decodeCheckpoint>,
) {
  writeFileSync(path, encodeCheckpoint(edit(decodeCheckpoint(readFileSync(path), path))));
}

function control(): RankControl {
  return {
    previous: undefined,
    heartbeat() {},
    signal: new AbortController().signal,
    shouldStop: () => false,
  };
}

const isRunDirError = (pattern: RegExp) => (err: unknown) =>
  err instanceof RunDirError && pattern.test(err.message) && !err.message.includes('\n');

describe('run directory - identity', () => {
  it('run.json is written once at creation and every checkpoint carries its run id and digest', () => {
    const id = readRunIdentity(good);
    assert.ok(id);
    assert.match(id.runId, /^[0-9a-f-]{36}$/);
    for (const name of listCheckpoints(runPaths(good).checkpoints)) {
      const c = decodeCheckpoint(readFileSync(join(runPaths(good).checkpoints, name)), name);
      assert.deepEqual(c.meta.run, { runId: id.runId, configDigest: id.configDigest });
    }
    assert.notEqual(readRunIdentity(other)?.runId, id.runId);
  });

  it('a new run on an existing run directory is refused, naming --resume and --force, and changes nothing', () => {
    const dir = copyRun(good);
    const before = digestTree(dir);
    assert.throws(
      () => claimRunDir(dir, cfg, { resume: false }),
      isRunDirError(/already holds a run \(2 checkpoints, metrics.jsonl, summary.json\).*--resume.*--force/),
    );
    assert.deepEqual(digestTree(dir), before);
  });

  it('--force moves the old run aside, whole, and starts a new identity', () => {
    const dir = copyRun(good);
    const before = digestTree(dir);
    const claim = claimRunDir(dir, cfg, { resume: false, force: true });
    try {
      assert.ok(claim.movedAside);
      assert.deepEqual(digestTree(claim.movedAside), before);
      assert.notEqual(claim.identity.runId, readRunIdentity(good)?.runId);
      assert.deepEqual(listCheckpoints(runPaths(dir).checkpoints), []);
    } finally {
      claim.release();
    }
  });

  it('a stub left by a run that failed before its first epoch is reused', () => {
    const dir = join(tempDir(), 'stub');
    mkdirSync(dir);
    copyFileSync(runPaths(good).config, runPaths(dir).config);
    copyFileSync(join(good, 'run.json'), join(dir, 'run.json'));
    const claim = claimRunDir(dir, tinyConfig({ ...FIXTURE_RUN, model: { depth: 14 } }), { resume: false });
    claim.release();
    assert.notEqual(claim.identity.runId, readRunIdentity(good)?.runId);
  });

  it('a resume whose overrides change the model or the data is refused with the fields named', () => {
    const dir = copyRun(good);
    const before = digestTree(dir);
    const changed = tinyConfig({ ...FIXTURE_RUN, model: { depth: 14 }, dataset: { imbalanceRatio: 4 } });
    assert.throws(
      () => claimRunDir(dir, changed, { resume: true }),
      isRunDirError(
        /dataset.imbalanceRatio \(8 → 4\), model.depth \(8 → 14\) would change the run's model or data/,
      ),
    );
    // Changing how the run continues is allowed.
    claimRunDir(dir, tinyConfig({ ...FIXTURE_RUN, train: { epochs: 3 } }), { resume: true }).release();
    assert.deepEqual(digestTree(dir), before);
  });

  it('a directory path through a file, or a file as the run directory, is one clear line', () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'x');
    assert.throws(
      () => claimRunDir(join(file, 'run'), cfg, { resume: false }),
      isRunDirError(/a part of the path is a file, not a directory \(ENOTDIR\)/),
    );
    assert.throws(
      () => claimRunDir(file, cfg, { resume: false }),
      isRunDirError(/is a file, not a directory/),
    );
  });
});

describe('run directory - lock', () => {
  it('two claims of one directory: the second is refused, naming the holder; free again after release', () => {
    const dir = copyRun(good);
    const first = claimRunDir(dir, cfg, { resume: true });
    assert.throws(
      () => claimRunDir(dir, cfg, { resume: true }),
      isRunDirError(new RegExp(`in use by process ${process.pid} `)),
    );
    first.release();
    assert.equal(existsSync(lockPath(dir)), false);
    claimRunDir(dir, cfg, { resume: true }).release();
  });

  it('a lock left by a dead process on this host is stale and taken over', () => {
    const dir = copyRun(good);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const pid = Number(dead.stdout.toString());
    writeFileSync(
      lockPath(dir),
      JSON.stringify({
        pid,
        host: hostname(),
        since: 'then',
      }),
    );
    const lock = acquireRunLock(dir);
    assert.equal(JSON.parse(readFileSync(lockPath(dir), 'utf8')).pid, process.pid);
    lock.release();
  });

  it('a lock held on another host is refused with the way to clear it', () => {
    const dir = copyRun(good);
    writeFileSync(lockPath(dir), JSON.stringify({ pid: 1, host: 'elsewhere.example', since: 'then' }));
    assert.throws(
      () => acquireRunLock(dir),
      isRunDirError(/in use by process 1 on host elsewhere.example .*delete .*\.bbn\.lock/),
    );
  });
});

describe('run directory - restore or refuse', () => {
  it('a checkpoint of another run with the same model is skipped and named; the run resumes from its own', async () => {
    const dir = copyRun(good);
    rmSync(ckpt(dir, 2));
    copyFileSync(ckpt(other, 2), ckpt(dir, 2));
    const seen: string[] = [];
    await runTraining(cfg, dir, {
      resume: true,
      backend,
      data,
      hooks: {
        onStart: ({ resumedFrom, startEpoch }) => {
          seen.push(`start ${startEpoch}`, ...(resumedFrom?.rejected.map((r) => r.reason) ?? []));
        },
      },
    });
    assert.equal(seen[0], 'start 2');
    assert.match(seen[1], /ckpt-e000002-s0000000.bbnckpt belongs to another run/);
  });

  it('a newest checkpoint with a valid checksum but a wrong section size is named and does not block the older good one', async () => {
    const dir = copyRun(good);
    rewrite(ckpt(dir, 2), (c) => ({
      ...c,
      sections: { ...c.sections, params: c.sections.params.subarray(1) },
    }));
    const deps = createLocalDeps();
    const lines: string[] = [];
    const logged = createLocalDeps({ log: (l) => lines.push(l) });
    try {
      const r = await logged.prepareRun({
        runId: 'r',
        outDir: dir,
        config: cfg,
        generation: 0,
        resume: true,
      });
      assert.equal(r.startEpoch, 2);
      assert.ok(
        lines.some((l) =>
          /ckpt-e000002-s0000000.bbnckpt: section params has \d+ floats, the model needs \d+/.test(l),
        ),
        lines.join('\n'),
      );
    } finally {
      await deps.dispose();
      await logged.dispose();
    }
  });

  it('NaN weights in the newest checkpoint are named and the older good one is used', async () => {
    const dir = copyRun(good);
    rewrite(ckpt(dir, 2), (c) => {
      const params = c.sections.params.slice();
      params[7] = Number.NaN;
      return { ...c, sections: { ...c.sections, params } };
    });
    const lines: string[] = [];
    const deps = createLocalDeps({ log: (l) => lines.push(l) });
    try {
      const r = await deps.prepareRun({ runId: 'r', outDir: dir, config: cfg, generation: 0, resume: true });
      assert.equal(r.startEpoch, 2);
      assert.ok(
        lines.some((l) => /section params holds non-finite weights \(NaN at 7\)/.test(l)),
        lines.join('\n'),
      );
    } finally {
      await deps.dispose();
    }
  });

  it('Temporal path: a resume with every checkpoint corrupt fails without retry, every attempt, and writes nothing', async () => {
    const dir = copyRun(good);
    for (const name of listCheckpoints(runPaths(dir).checkpoints)) {
      const p = join(runPaths(dir).checkpoints, name);
      const bytes = readFileSync(p);
      bytes[bytes.length - 40] ^= 0xff;
      writeFileSync(p, bytes);
    }
    const before = digestTree(dir);
    const deps = createLocalDeps();
    try {
      const ref = { runId: 'corrupt', outDir: dir, config: cfg, generation: 0 };
      for (let attempt = 0; attempt < 2; attempt++) {
        await assert.rejects(
          deps.prepareRun({ ...ref, resume: true }),
          (err: Error & { nonRetryable?: boolean; type?: string }) =>
            err.nonRetryable === true &&
            err.type === 'ConfigError' &&
            /no usable checkpoint .*2 rejected.*checksum mismatch/.test(err.message),
        );
        // A retried train call must not find a fresh session either.
        await assert.rejects(
          deps.trainEpochOnRank(
            { ...ref, epoch: 1, rank: 0, worldSize: 1, plan: { epoch: 1, alpha: 1, lr: 0.05, steps: 5 } },
            control(),
          ),
          /no usable checkpoint/,
        );
      }
    } finally {
      await deps.dispose();
    }
    assert.deepEqual(digestTree(dir), before);
  });

  it('Temporal path: a resume with another model (model.depth=14) is refused, every attempt, and writes nothing', async () => {
    const dir = copyRun(good);
    const before = digestTree(dir);
    const deps = createLocalDeps();
    try {
      const config = tinyConfig({ ...FIXTURE_RUN, model: { depth: 14 } });
      for (let attempt = 0; attempt < 2; attempt++) {
        await assert.rejects(
          deps.prepareRun({ runId: 'deeper', outDir: dir, config, generation: 0, resume: true }),
          (err: Error & { nonRetryable?: boolean }) =>
            err.nonRetryable === true && /belongs to another model/.test(err.message),
        );
      }
    } finally {
      await deps.dispose();
    }
    assert.deepEqual(digestTree(dir), before);
  });

  it('in-process path: a resume with every checkpoint unusable throws a CheckpointError and writes nothing', async () => {
    const dir = copyRun(good);
    for (const name of listCheckpoints(runPaths(dir).checkpoints))
      writeFileSync(join(runPaths(dir).checkpoints, name), Buffer.alloc(64));
    const before = digestTree(dir);
    await assert.rejects(runTraining(cfg, dir, { resume: true, backend, data }), CheckpointError);
    assert.deepEqual(digestTree(dir), before);
  });
});
