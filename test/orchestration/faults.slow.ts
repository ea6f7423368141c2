/**
 * Crashes a durable run survives, with real processes and a real Temporal server: a rank process
 * SIGKILLed mid-epoch (its local supervisor replaces it, the workflow restarts the epoch from the
 * last checkpoint), and the Temporal server itself stopped and restarted on its SQLite state in
 * the middle of a run. Both runs end with the weights of an uninterrupted run, bit for bit.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { loadRunConfig } from '../../src/cli/config-file.ts';
import { trainDurably } from '../../src/cli/durable-train.ts';
import { freePort, startTemporalDevServer } from '../../src/devservers/index.ts';
import { selectBackend } from '../../src/model/backend.ts';
import { runStatus, startRun } from '../../src/orchestration/client.ts';
import { createLocalDeps } from '../../src/orchestration/local.ts';
import { trainingWorkflowBundle } from '../../src/orchestration/worker.ts';
import { runTraining } from '../../src/worker/run.ts';
import {
  finalParams,
  launch,
  MID_EPOCH_RUN,
  MID_EPOCH_STEPS,
  removeTempDirs,
  tempDir,
  writeTinyConfig,
} from '../distributed/fixtures.ts';
import { startTestTemporal, type TestServer } from '../helpers/servers.ts';
import { serveRun, TEST_TIMEOUTS, tinyConfig } from './fixtures.ts';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), '..', 'distributed', 'worker-entry.ts');

let server: TestServer;
let configPath: string;

before(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  server = await startTestTemporal();
  configPath = writeTinyConfig();
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

describe('durable runs survive crashes (real processes, real Temporal server)', () => {
  it('SIGKILL of rank 1 mid-epoch (W=2): the replacement rejoins and the run ends bit-identical', {
    timeout: 240_000,
  }, async (t) => {
    const plainDir = tempDir();
    const plain = await launch({
      configPath,
      outDir: plainDir,
      workers: 2,
      overrides: MID_EPOCH_RUN,
      temporal: server.address,
    });
    assert.equal(plain.outcome.kind, 'finished');

    const durableStart = performance.now();
    const outDir = tempDir();
    const runId = `kill-${process.pid}`;
    const rank1: ChildProcess[] = [];
    const connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection });
    let killedAt: { epoch: number; step: number; ms: number } | undefined;
    let resumedAfterMs: number | undefined;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const s = await runStatus(client, runId).catch(() => undefined);
        const r1 = s?.ranks.find((r) => r.rank === 1);
        if (!killedAt && r1 && r1.epoch === 2 && r1.step > 0) {
          killedAt = { epoch: r1.epoch, step: r1.step, ms: performance.now() };
          rank1.at(-1)?.kill('SIGKILL');
        } else if (killedAt && resumedAfterMs === undefined && s && s.generation > 0) {
          if (s.ranks.some((r) => r.generation > 0 && r.step > 0))
            resumedAfterMs = performance.now() - killedAt.ms;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      const result = await trainDurably({
        cfg: loadRunConfig(configPath, [...MID_EPOCH_RUN, 'distributed.workers=2']),
        outDir,
        workers: 2,
        resume: false,
        runId,
        temporal: server.address,
        workerCommand: [process.execPath, '--import', 'tsx', ENTRY, 'worker'],
        onSpawn: (rank, child) => {
          if (rank === 1) rank1.push(child);
        },
        // The shipped defaults: the supervisor reports the exit at once (rankLost), no test timeouts.
        say: () => {},
      });
      assert.equal(result.state, 'completed');
      assert.ok(killedAt && killedAt.step < MID_EPOCH_STEPS, 'rank 1 was killed in the middle of epoch 2');
      assert.equal(rank1.length, 2, 'rank 1 was replaced once');
      assert.ok(result.generation >= 1, 'the epoch restarted as a new generation');
      assert.deepEqual(finalParams(outDir), finalParams(plainDir), 'bit-identical to the uninterrupted run');
      t.diagnostic(
        `killed rank 1 at epoch ${killedAt.epoch} step ${killedAt.step}; training resumed ${
          resumedAfterMs === undefined ? '(not observed)' : `${(resumedAfterMs / 1000).toFixed(1)} s`
        } later (shipped defaults: exit reported by the supervisor, 1 s restart delay and backoff); generation ${result.generation}; ` +
          `uninterrupted run ${plain.outcome.seconds.toFixed(1)} s, this run ${((performance.now() - durableStart) / 1000).toFixed(1)} s`,
      );
    } finally {
      watching = false;
      await watcher;
      await connection.close();
    }
  });

  it('a Temporal server restart in the middle of a run: the run completes bit-identical', {
    timeout: 180_000,
  }, async () => {
    const backend = (await selectBackend('auto')).name;
    const reference = tempDir();
    await runTraining(tinyConfig(3), reference, { backend });

    const dataDir = tempDir('bbn-temporal-state-');
    const port = await freePort();
    let temporal = await startTemporalDevServer({ dataDir, port });
    const native = await NativeConnection.connect({ address: temporal.address });
    const connection = await Connection.connect({ address: temporal.address });
    const client = new Client({ connection });
    const runId = `restart-${process.pid}`;
    let restarted = false;
    const deps = createLocalDeps({
      // While rank 0 finishes epoch 1, the server goes away and comes back on the same state.
      onEpoch: async (row) => {
        if (row.epoch !== 1) return;
        await temporal.stop();
        temporal = await startTemporalDevServer({ dataDir, port });
        restarted = true;
      },
    });
    try {
      const outDir = tempDir();
      const served = { connection: native, runId, workflows: await trainingWorkflowBundle(), ranks: [deps] };
      const result = await serveRun(served, async () => {
        const handle = await startRun(client, {
          runId,
          config: tinyConfig(3),
          outDir,
          workers: 1,
          timeouts: TEST_TIMEOUTS,
          restart: { initialBackoffMs: 100 },
        });
        return handle.result();
      });
      assert.ok(restarted, 'the server was restarted mid-run');
      assert.equal(result.state, 'completed');
      assert.deepEqual(
        result.epochs.map((e) => e.epoch),
        [1, 2, 3],
      );
      assert.deepEqual(finalParams(outDir), finalParams(reference), 'bit-identical final weights');
    } finally {
      await deps.dispose();
      await connection.close();
      await native.close();
      await temporal.stop();
    }
  });
});
