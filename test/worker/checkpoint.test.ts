import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  type Checkpoint,
  CheckpointError,
  checkpointFileName,
  listCheckpoints,
  loadLatestGood,
  readCheckpoint,
  writeCheckpoint,
} from '../../src/worker/checkpoint.ts';

function sample(epoch: number, size = 1000): Checkpoint {
  const params = new Float32Array(size).map((_, i) => Math.sin(i + epoch));
  return {
    meta: { epoch, step: 0, modelSignature: 'net-A', config: { seed: 1 }, extra: { best: 0.5 } },
    sections: { params, momentum: new Float32Array(7).fill(epoch), empty: new Float32Array(0) },
  };
}

const tempDir = () => mkdtempSync(join(tmpdir(), 'bbn-ckpt-'));

describe('checkpoint files', () => {
  it('round-trips sections and metadata bit for bit', async () => {
    const dir = tempDir();
    const path = await writeCheckpoint(dir, sample(3), 3);
    const back = readCheckpoint(path, 'net-A');
    assert.deepEqual(back.meta, sample(3).meta);
    assert.deepEqual(back.sections.params, sample(3).sections.params);
    assert.deepEqual(back.sections.momentum, sample(3).sections.momentum);
    assert.equal(back.sections.empty.length, 0);
  });

  it('keeps only the newest K and leaves no temporary files', async () => {
    const dir = tempDir();
    for (let e = 1; e <= 5; e++) await writeCheckpoint(dir, sample(e), 2);
    assert.deepEqual(listCheckpoints(dir), [checkpointFileName(4), checkpointFileName(5)]);
    assert.deepEqual(readdirSync(dir).sort(), [checkpointFileName(4), checkpointFileName(5)]);
  });

  it('refuses a corrupt, truncated or foreign checkpoint and falls back to the previous one', async () => {
    const dir = tempDir();
    await writeCheckpoint(dir, sample(1), 5);
    await writeCheckpoint(dir, sample(2), 5);
    const p3 = await writeCheckpoint(dir, sample(3), 5);
    const bytes = readFileSync(p3);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(p3, bytes);
    assert.throws(() => readCheckpoint(p3), /corrupt or truncated/);
    const p2 = join(dir, checkpointFileName(2));
    writeFileSync(p2, readFileSync(p2).subarray(0, 100));
    const latest = loadLatestGood(dir, 'net-A');
    assert.equal(latest?.checkpoint.meta.epoch, 1);
    assert.equal(latest?.rejected.length, 2);
    assert.throws(
      () => readCheckpoint(join(dir, checkpointFileName(1)), 'net-B'),
      /belongs to another model/,
    );
    assert.throws(() => loadLatestGood(dir, 'net-B'), CheckpointError);
  });

  it('an empty directory has no checkpoint; a file that is not a checkpoint is named', () => {
    const dir = tempDir();
    assert.equal(loadLatestGood(dir), undefined);
    const bogus = join(dir, checkpointFileName(1));
    writeFileSync(bogus, 'hello, this is not a checkpoint at all, just some text');
    assert.throws(
      () => readCheckpoint(bogus),
      (e: Error) => e instanceof CheckpointError && e.message.includes(bogus),
    );
  });

  it('a process killed while saving never leaves a bad checkpoint behind', async () => {
    const dir = tempDir();
    await writeCheckpoint(dir, sample(0, 10), 100);
    const script = join(tempDir(), 'writer.mts');
    writeFileSync(
      script,
      `import { writeCheckpoint } from ${JSON.stringify(join(process.cwd(), 'src/worker/checkpoint.ts'))};
       const dir = process.argv[2];
       for (let e = 1; ; e++) {
         await writeCheckpoint(dir, { meta: { epoch: e, step: 0, modelSignature: 'net-A', config: {}, extra: {} },
           sections: { params: new Float32Array(2_000_000).fill(e) } }, 3);
         if (e === 2) process.send?.('written');
       }`,
    );
    const child = fork(script, [dir], { execArgv: ['--import', 'tsx'], stdio: 'ignore' });
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`writer exited early with ${code}`)));
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const latest = loadLatestGood(dir, 'net-A');
    assert.ok(latest && latest.checkpoint.meta.epoch >= 2, 'a completed checkpoint survives');
    assert.equal(latest.rejected.length, 0, 'no half-written file under a checkpoint name');
    assert.ok(latest.checkpoint.sections.params.every((v) => v === latest.checkpoint.meta.epoch));
  });
});
