/**
 * The compute thread of a worker rank (src/worker/process/compute-thread.ts), driven directly by
 * the test as a rank's main thread drives it: the identity allreduce of a world of one. Checks what crosses the thread boundary and that every path ends the thread with
 * no tensor left alive.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { epochPolicy, planFor } from '../../src/core/index.ts';
import { loadData } from '../../src/data/load.ts';
import { readCheckpoint } from '../../src/worker/checkpoint.ts';
import { ComputeThread, type EpochHandlers } from '../../src/worker/process/compute-thread.ts';
import { paramsDigest } from '../../src/worker/process/digests.ts';
import { WorkerError } from '../../src/worker/process/errors.ts';
import type { StepReport } from '../../src/worker/trainer.ts';
import { removeTempDirs, tempDir, tinyConfig } from './fixtures.ts';

after(removeTempDirs);

describe('compute thread', () => {
  it('a set-up that fails (here: the data set is missing) fails the start with a WorkerError naming it, and the thread ends', async () => {
    const cfg = tinyConfig();
    const missing = {
      ...cfg,
      dataset: { ...cfg.dataset, kind: 'cifar10' as const, root: '/nonexistent-cifar' },
    };
    await assert.rejects(ComputeThread.open({ cfg: missing, outDir: tempDir() }), (err: Error) => {
      assert.ok(err instanceof WorkerError, String(err));
      assert.match(
        err.message,
        /^compute thread: DataError: dataset.root \/nonexistent-cifar is not a directory/,
      );
      return true;
    });
  });

  it('trains with allreduces served by the main thread; errors on either side reach the caller; close frees every tensor', async () => {
    const cfg = tinyConfig();
    const data = await loadData(cfg.dataset);
    const { thread, ready } = await ComputeThread.open({ cfg, outDir: tempDir() });
    try {
      assert.equal(ready.backend.length > 0, true);
      assert.match(ready.signature, /^bbn-/);

      // A thread-side throw: the checkpoint does not exist.
      await assert.rejects(
        thread.start({
          rank: 0,
          worldSize: 1,
          checkpointUri: '/nonexistent.bbnckpt',
          startEpoch: 2,
          startStep: 0,
        }),
        (err: Error) =>
          err instanceof WorkerError && /^compute thread: \w+Error: .*nonexistent/.test(err.message),
      );
      assert.deepEqual(
        await thread.start({ rank: 0, worldSize: 1, checkpointUri: '', startEpoch: 1, startStep: 0 }),
        { resumed: false, epoch: 0, step: 0, rejected: [] },
      );

      const plan = planFor(
        cfg,
        epochPolicy(cfg, 1, data.trainCounts),
        1,
        data.train.labels,
        data.train.numClasses,
      );
      const reports: StepReport[] = [];
      let wires = 0;
      const handlers = (overrides: Partial<EpochHandlers> = {}): EpochHandlers => ({
        reduce: async (wire) => {
          // The gradient plus the four trainer sums plus the stop vote, handed over whole.
          assert.equal(wire.byteOffset, 0);
          assert.equal(wire.buffer.byteLength, wire.byteLength);
          wire[wire.length - 1] = 0;
          wires++;
        },
        step: (r) => reports.push(r),
        ...overrides,
      });
      const args = { epoch: 1, steps: plan.steps, fromStep: 0 };
      const result = await thread.trainEpoch(args, handlers());
      assert.equal(result.complete, true);
      assert.equal(result.stepsDone, plan.steps);
      assert.equal(wires, plan.steps);
      assert.deepEqual(
        reports.map((r) => r.step),
        Array.from({ length: plan.steps }, (_, i) => i + 1),
      );
      // The digest command hashes the weights a checkpoint then holds.
      const saved = readCheckpoint(await thread.saveCheckpoint({ epoch: 1, step: 0 }));
      assert.equal(await thread.digest(), Buffer.from(paramsDigest(saved.sections.params)).toString('hex'));

      // The stop vote: set on the first step, the epoch ends after it, incomplete.
      const stopped = await thread.trainEpoch(
        { ...args, epoch: 2 },
        handlers({
          reduce: async (wire) => {
            wire[wire.length - 1] = 1;
          },
        }),
      );
      assert.deepEqual([stopped.complete, stopped.stepsDone], [false, 1]);

      // A main-side handler error: the epoch fails with that very error.
      const refused = new WorkerError('ring lost at step 2');
      await assert.rejects(
        thread.trainEpoch(
          { ...args, epoch: 3 },
          handlers({
            reduce: async (wire, tag) => {
              if (tag.step === 1) throw refused;
              wire[wire.length - 1] = 0;
            },
          }),
        ),
        (err: Error) => err === refused,
      );

      // fail() while the thread waits for the main thread: the epoch rejects at once.
      const aborted = new WorkerError('aborted by the coordinator');
      const pending = thread.trainEpoch(
        { ...args, epoch: 3 },
        handlers({
          reduce: () => {
            thread.fail(aborted);
            return new Promise(() => {}); // never answered: the thread stays waiting
          },
        }),
      );
      await assert.rejects(pending, (err: Error) => err === aborted);
      await assert.rejects(thread.finishRun({ seconds: 1, backend: 'x' }), (err: Error) => err === aborted);
    } finally {
      // The thread still waits for its allreduce; close frees its model all the same.
      assert.equal(await thread.close(), 0);
    }
  });
});
