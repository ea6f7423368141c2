/**
 * The replica check every `distributed.checksumEverySteps` steps (src/worker/replica-check.ts):
 * two ranks of the tiny run in this process, their allreduce an exact in-memory sum of the two
 * wires (what the ring computes at W = 2). Replicas that agree train on; a rank whose weights were
 * corrupted (a restore that went wrong) stops both ranks at the next checking step, naming it,
 * before that step touches the weights.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import type { LoadedData } from '../../src/data/api.ts';
import { loadData } from '../../src/data/load.ts';
import { selectBackend } from '../../src/model/backend.ts';
import { createModel } from '../../src/model/factory.ts';
import { ReplicasDivergedError } from '../../src/worker/replica-check.ts';
import { modelSpecFor } from '../../src/worker/run.ts';
import { type Reducer, Trainer } from '../../src/worker/trainer.ts';
import { tinyConfig } from '../helpers/tiny.ts';

let data: LoadedData;
before(async () => {
  await selectBackend('auto');
  data = await loadData(tinyConfig().dataset);
});

/** Reducers of a world of two: each call waits for the other rank's call of the same order, then both hold the sum. */
function pairedReducers(): [Reducer, Reducer] {
  const waiting: Array<Array<{ buf: Float32Array; done: () => void }>> = [[], []];
  const reducer =
    (rank: 0 | 1): Reducer =>
    (buf) =>
      new Promise<void>((resolve) => {
        const other = waiting[1 - rank].shift();
        if (!other) {
          waiting[rank].push({ buf, done: resolve });
          return;
        }
        assert.equal(other.buf.length, buf.length);
        for (let i = 0; i < buf.length; i++) {
          const sum = Math.fround(other.buf[i] + buf[i]);
          other.buf[i] = sum;
          buf[i] = sum;
        }
        other.done();
        resolve();
      });
  return [reducer(0), reducer(1)];
}

function world(checksumEverySteps: number) {
  const cfg = tinyConfig({ train: { epochs: 2 }, distributed: { checksumEverySteps } });
  const reducers = pairedReducers();
  return ([0, 1] as const).map((rank) => {
    const model = createModel(modelSpecFor(cfg, data), Rng.fromSeed(cfg.seed).split('init'));
    return { model, trainer: new Trainer(cfg, data, model, { rank, worldSize: 2 }, reducers[rank]) };
  });
}

describe('replica check', () => {
  it('replicas that agree train on; a corrupted rank stops both ranks at the next check, named, before the step is applied', async () => {
    const ranks = world(2);
    try {
      const first = await Promise.all(ranks.map(({ trainer }) => trainer.trainEpoch(1)));
      assert.ok(first.every((r) => r.complete && r.steps === 5));
      assert.deepEqual(ranks[1].model.getParams(), ranks[0].model.getParams());

      // Rank 1 restores weights that differ in one value by one ulp.
      const params = ranks[1].model.getParams();
      params[7] = Math.fround(params[7] * (1 + 2 ** -23));
      ranks[1].model.setParams(params);
      ranks[1].trainer.restore(ranks[1].trainer.state());
      const before = ranks.map(({ model }) => model.getParams());
      const steps: number[][] = [[], []];
      const outcomes = await Promise.allSettled(
        ranks.map(({ trainer }, r) => trainer.trainEpoch(2, { onStep: (s) => steps[r].push(s.step) })),
      );
      for (const [r, o] of outcomes.entries()) {
        assert.equal(o.status, 'rejected', `rank ${r}`);
        const err = (o as PromiseRejectedResult).reason;
        assert.ok(err instanceof ReplicasDivergedError, String(err));
        assert.deepEqual([err.epoch, err.step, err.ranks], [2, 1, [1]]);
        assert.match(
          err.message,
          /^replicas diverged at epoch 2 step 1: the weights of rank 1 differ from rank 0's \(checked every 2 steps, distributed.checksumEverySteps\); the step was not applied$/,
        );
        assert.deepEqual(steps[r], []);
        assert.deepEqual(ranks[r].model.getParams(), before[r], `rank ${r}: weights untouched`);
      }
    } finally {
      for (const { model } of ranks) model.dispose();
    }
  });

  it('checks at every N-th step of the epoch, counting from its first: a difference that arises after a check is caught at the next', async () => {
    const ranks = world(3);
    try {
      // Rank 1 is corrupted after step 1 of epoch 1 (between the checks at steps 1 and 4).
      const outcomes = await Promise.allSettled(
        ranks.map(({ model, trainer }, r) =>
          trainer.trainEpoch(1, {
            afterStep: async (done) => {
              if (r !== 1 || done !== 1) return;
              const p = model.getParams();
              p[0] += 1e-3;
              model.setParams(p);
              trainer.restore(trainer.state());
            },
          }),
        ),
      );
      for (const o of outcomes) {
        assert.equal(o.status, 'rejected');
        const err = (o as PromiseRejectedResult).reason as ReplicasDivergedError;
        assert.deepEqual([err.name, err.epoch, err.step, err.ranks], ['ReplicasDivergedError', 1, 4, [1]]);
      }
    } finally {
      for (const { model } of ranks) model.dispose();
    }
  });
});
