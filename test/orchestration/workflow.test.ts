import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import { temporalLaunch } from '../../src/cli/run-commands.ts';
import { parseRunConfig } from '../../src/core/config.ts';
import type { LoadedData } from '../../src/data/api.ts';
import { loadData } from '../../src/data/load.ts';
import { selectBackend } from '../../src/model/backend.ts';
import type { TrainingDeps } from '../../src/orchestration/activities.ts';
import {
  coordinatorTaskQueue,
  type RunProgress,
  runWorkflowId,
  TRAINING_WORKFLOW,
  type TrainingInput,
  type TrainingResult,
} from '../../src/orchestration/api.ts';
import { createLocalDeps } from '../../src/orchestration/local.ts';
import {
  cancelSignal,
  pauseSignal,
  progressQuery,
  rankLostSignal,
  resumeSignal,
  scaleUpdate,
} from '../../src/orchestration/messages.ts';
import { trainingWorkflowBundle, writeWorkflowBundle } from '../../src/orchestration/worker.ts';
import { runTraining } from '../../src/worker/run.ts';
import { readMetrics } from '../../src/worker/run-dir.ts';
import { writeCifar10 } from '../data/fixtures.ts';
import { startTestTemporal, type TestServer, waitUntil } from '../helpers/servers.ts';
import { tinyRun } from '../helpers/tiny.ts';
import { finalParams, serveRun, TEST_TIMEOUTS, tempDir, tinyConfig } from './fixtures.ts';

/** Re-record with BBN_UPDATE_FIXTURES=1 after an intended workflow change, then `npx biome format --write` it. */
const FIXTURE = join(import.meta.dirname, 'fixtures', 'bbn-training-2-epochs.history.json');

let server: TestServer;
let connection: Connection;
let nativeConnection: NativeConnection;
let client: Client;
let bundle: WorkflowBundle;
let backend: string;
let data: LoadedData;
/** Final weights of `runTraining` of the 2-epoch tiny config: what every durable run must end with. */
let reference: Float32Array;
let runs = 0;

before(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  [server, bundle] = await Promise.all([startTestTemporal(), trainingWorkflowBundle()]);
  backend = (await selectBackend('auto')).name;
  data = await loadData(tinyConfig().dataset);
  const dir = tempDir();
  await runTraining(tinyConfig(), dir, { backend, data });
  reference = finalParams(dir);
  connection = await Connection.connect({ address: server.address });
  nativeConnection = await NativeConnection.connect({ address: server.address });
  client = new Client({ connection });
});

after(async () => {
  await connection?.close();
  await nativeConnection?.close();
  await server?.stop();
});

function input(extra: Partial<TrainingInput> = {}): TrainingInput {
  runs++;
  return {
    runId: `t${process.pid}-${runs}`,
    config: tinyConfig(),
    outDir: tempDir(),
    workers: 1,
    timeouts: TEST_TIMEOUTS,
    restart: { initialBackoffMs: 100 },
    ...extra,
  };
}

function start(inp: TrainingInput) {
  return client.workflow.start<(i: TrainingInput) => Promise<TrainingResult>>(TRAINING_WORKFLOW, {
    taskQueue: coordinatorTaskQueue(inp.runId),
    workflowId: runWorkflowId(inp.runId),
    args: [inp],
  });
}

/** Runs `body` while this process serves run `runId` (its coordinator and its rank 0 over `deps`). */
function withWorker<T>(runId: string, deps: TrainingDeps, body: () => Promise<T>): Promise<T> {
  return serveRun({ connection: nativeConnection, runId, workflows: bundle, ranks: [deps] }, body);
}

describe('bbnTraining workflow', () => {
  it('a 2-epoch run through Temporal ends with the same weights as runTraining, and its history replays', {
    timeout: 90_000,
  }, async () => {
    const inp = input();
    const local = createLocalDeps();
    const handle = await start(inp);
    const [result, progress] = await withWorker(inp.runId, local, async () => [
      await handle.result(),
      await handle.query(progressQuery),
    ]);
    local.dispose();
    assert.equal(result.state, 'completed');
    assert.deepEqual(
      result.epochs.map((e) => e.epoch),
      [1, 2],
    );
    assert.deepEqual(finalParams(inp.outDir), reference, 'bit-identical final weights');
    assert.deepEqual(
      readMetrics(inp.outDir).map((r) => r.epoch),
      [1, 2],
    );
    assert.ok(existsSync(join(inp.outDir, 'summary.json')), 'summary.json written');
    assert.equal(progress.state, 'completed');
    assert.equal(progress.generation, 0);

    const history = await handle.fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: bundle }, history);
    if (process.env.BBN_UPDATE_FIXTURES === '1') writeFileSync(FIXTURE, historyToJSON(history));
  });

  it('the recorded fixture history still replays against the current workflow code', {
    timeout: 90_000,
  }, async () => {
    const history = historyFromJSON(JSON.parse(readFileSync(FIXTURE, 'utf8')));
    await Worker.runReplayHistory({ workflowBundle: bundle }, history);
  });

  it('pauses at the epoch boundary after a pause signal, reports paused, and completes after resume', {
    timeout: 90_000,
  }, async () => {
    const inp = input();
    const local = createLocalDeps();
    const handle = await start(inp);
    const deps: TrainingDeps = {
      ...local,
      async trainEpochOnRank(req, ctl) {
        if (req.epoch === 1) await handle.signal(pauseSignal); // arrives while epoch 1 trains
        return local.trainEpochOnRank(req, ctl);
      },
    };
    const result = await withWorker(inp.runId, deps, async () => {
      await waitUntil(
        'state paused',
        async () => (await handle.query(progressQuery)).state === 'paused',
        30_000,
      );
      const paused = await handle.query(progressQuery);
      assert.equal(paused.epoch, 2, 'paused before epoch 2');
      assert.equal(paused.lastMetrics?.epoch, 1, 'epoch 1 finished and checkpointed');
      assert.match(paused.checkpoint ?? '', /ckpt-e000001-s0000000/);
      await handle.signal(resumeSignal);
      return handle.result();
    });
    local.dispose();
    assert.equal(result.state, 'completed');
    assert.deepEqual(finalParams(inp.outDir), reference);
  });

  it("a rank's loss reported after the survivors' failure (during the restart) is named by the status and is the failure's cause", {
    timeout: 90_000,
  }, async () => {
    // A restart that waits 10 minutes: the report surely lands in it, whatever the machine's load.
    const inp = input({ restart: { initialBackoffMs: 600_000 } });
    const local = createLocalDeps();
    const handle = await start(inp);
    const deps: TrainingDeps = {
      ...local,
      async trainEpochOnRank() {
        // What a survivor reports when its supervisor killed the frozen neighbour.
        throw new Error('rank 0: ring peer rank 1 lost (connection closed)');
      },
    };
    const detail = 'frozen: no answer from its health endpoint for 3.0 s (pid 42); killed and replaced';
    const progress = await withWorker(inp.runId, deps, async () => {
      try {
        await waitUntil(
          'state restarting',
          async () => (await handle.query(progressQuery)).state === 'restarting',
          30_000,
        );
        const before = await handle.query(progressQuery);
        assert.deepEqual(before.lost, []);
        assert.equal(before.failures.at(-1)?.cause, undefined);
        await handle.signal(rankLostSignal, { rank: 0, cause: 'frozen', detail });
        await waitUntil(
          'the rank named',
          async () => ((await handle.query(progressQuery)).lost ?? []).length > 0,
          30_000,
        );
        return await handle.query(progressQuery);
      } finally {
        // Ends the workflow's 10-minute restart on every path, so the worker can stop.
        await handle.terminate('test done').catch(() => {});
      }
    }).finally(() => local.dispose());
    assert.deepEqual(
      progress.lost?.map((l) => [l.rank, l.cause]),
      [[0, 'frozen']],
    );
    assert.deepEqual(
      progress.failures.map((f) => ({ ...f })),
      [{ epoch: 1, generation: 0, rank: 0, message: `rank 0 ${detail}`, cause: 'frozen' }],
    );
  });

  it("a rank's loss reported after the restart's backoff, before its generation trained, belongs to that restart", {
    timeout: 120_000,
  }, async () => {
    // The shipped restart backoff; a pause, asked for while the failing epoch is in flight, holds
    // the restarted run before its new generation trains, so the report surely lands there.
    const inp = input({ restart: {} });
    const local = createLocalDeps();
    const handle = await start(inp);
    const deps: TrainingDeps = {
      ...local,
      async trainEpochOnRank(req, ctl) {
        if (req.generation > 0) return local.trainEpochOnRank(req, ctl);
        await handle.signal(pauseSignal);
        throw new Error('rank 0: ring peer rank 1 lost (connection closed)');
      },
    };
    const detail =
      'exited: another process (pid 43 on host-a) now heartbeats as rank 0, which was pid 42 on host-a';
    const { result, progress } = await withWorker(inp.runId, deps, async () => {
      try {
        return await reportWhilePaused();
      } catch (err) {
        // A paused run would outlive the test: end it, so the worker can stop.
        await handle.terminate('test failed').catch(() => {});
        throw err;
      }
    }).finally(() => local.dispose());
    async function reportWhilePaused() {
      await waitUntil(
        'paused after the restart',
        async () => {
          const p = await handle.query(progressQuery);
          return p.state === 'paused' && p.failures.length === 1;
        },
        30_000,
      );
      await handle.signal(rankLostSignal, { rank: 0, cause: 'exited', detail });
      await waitUntil(
        'the rank named',
        async () => ((await handle.query(progressQuery)).lost ?? []).length > 0,
        20_000,
      );
      const progress = await handle.query(progressQuery);
      await handle.signal(resumeSignal);
      return { result: await handle.result(), progress };
    }
    assert.deepEqual(
      progress.lost?.map((l) => [l.rank, l.cause]),
      [[0, 'exited']],
    );
    assert.deepEqual(
      progress.failures.map((f) => ({ ...f })),
      [{ epoch: 1, generation: 0, rank: 0, message: `rank 0 ${detail}`, cause: 'exited' }],
    );
    assert.equal(result.state, 'completed');
    // One loss, one restart: no second generation for the same loss at the next epoch.
    assert.equal(result.generation, 1);
  });

  it("a loss reported from an older generation while the new one trains names that restart's cause and stops nothing", {
    timeout: 120_000,
  }, async () => {
    const inp = input();
    const local = createLocalDeps();
    const handle = await start(inp);
    const detail = 'frozen: no answer from its health endpoint for 3.0 s (pid 42); killed and replaced';
    let seen: RunProgress | undefined;
    const deps: TrainingDeps = {
      ...local,
      async trainEpochOnRank(req, ctl) {
        if (req.generation === 0) throw new Error('rank 0: ring peer rank 1 lost (connection closed)');
        if (!seen) {
          // Generation 1 trains: the report of the loss from generation 0 lands only now.
          await handle.signal(rankLostSignal, { rank: 0, cause: 'frozen', detail, generation: 0 });
          await waitUntil(
            'the report handled',
            async () => {
              const p = await handle.query(progressQuery);
              seen = p;
              return p.failures[0]?.cause !== undefined || (p.lost ?? []).length > 0;
            },
            20_000,
          );
        }
        return local.trainEpochOnRank(req, ctl);
      },
    };
    const result = await withWorker(inp.runId, deps, () => handle.result()).finally(() => local.dispose());
    assert.deepEqual(
      seen?.failures.map((f) => ({ ...f })),
      [{ epoch: 1, generation: 0, rank: 0, message: `rank 0 ${detail}`, cause: 'frozen' }],
    );
    assert.deepEqual(seen?.lost, [], 'the running generation lost nothing');
    assert.equal(result.state, 'completed');
    assert.equal(result.generation, 1, 'one loss, one restart');
    assert.deepEqual(
      result.epochs.map((e) => e.epoch),
      [1, 2],
    );
  });

  it('a run whose one rank trains in the host process (maxWorkers 1) refuses scale with how to grow it', {
    timeout: 90_000,
  }, async () => {
    const inp = input({ maxWorkers: 1 });
    const local = createLocalDeps();
    const handle = await start(inp);
    await handle.signal(pauseSignal);
    const result = await withWorker(inp.runId, local, async () => {
      await waitUntil(
        'state paused',
        async () => (await handle.query(progressQuery)).state === 'paused',
        30_000,
      );
      await assert.rejects(handle.executeUpdate(scaleUpdate, { args: [2] }), (err: unknown) => {
        assert.match(
          String((err as Error).cause),
          new RegExp(`trains in one process .*bbn train --resume ${inp.outDir} --workers 2`),
        );
        return true;
      });
      assert.equal((await handle.query(progressQuery)).pendingWorkers, null, 'nothing pending');
      await handle.signal(cancelSignal);
      return handle.result();
    });
    await local.dispose();
    assert.equal(result.state, 'cancelled');
  });

  it('scale rejects 0 and 65 before they reach history, accepts 1, and cancel stops cleanly', {
    timeout: 90_000,
  }, async () => {
    const inp = input({ maxWorkers: 64 });
    const local = createLocalDeps();
    const handle = await start(inp);
    await handle.signal(pauseSignal); // paused before epoch 1: nothing trains while we talk to it
    const result = await withWorker(inp.runId, local, async () => {
      await waitUntil(
        'state paused',
        async () => (await handle.query(progressQuery)).state === 'paused',
        30_000,
      );
      for (const bad of [0, 65, 1.5]) {
        await assert.rejects(handle.executeUpdate(scaleUpdate, { args: [bad] }), (err: unknown) => {
          assert.ok(err instanceof WorkflowUpdateFailedError, String(err));
          assert.match(String((err as Error).cause), /workers \(.*\) must be an integer in \[1, 64\]/);
          return true;
        });
      }
      assert.equal(await handle.executeUpdate(scaleUpdate, { args: [1] }), 1);
      assert.equal((await handle.query(progressQuery)).pendingWorkers, 1);
      await handle.signal(cancelSignal);
      return handle.result();
    });
    local.dispose();
    assert.equal(result.state, 'cancelled');
    assert.deepEqual(result.epochs, []);
    const history = await handle.fetchHistory();
    const updates = (history.events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes);
    assert.equal(updates.length, 1, 'only the valid update is in history');
  });

  it('a bad config fails the run with a non-retryable ConfigError naming the field', {
    timeout: 90_000,
  }, async () => {
    const inp = input({ config: { ...tinyConfig(), train: { ...tinyConfig().train, lr: -1 } } });
    const local = createLocalDeps();
    const handle = await start(inp);
    await withWorker(inp.runId, local, () =>
      assert.rejects(handle.result(), (err: Error) => {
        assert.match(String(err.cause), /train\.lr/);
        assert.equal((err.cause as { type?: string }).type, 'ConfigError');
        return true;
      }),
    );
    local.dispose();
  });

  it('bad data fails the run on its first attempt (non-retryable, the file named) and writes nothing into the run directory', {
    timeout: 90_000,
  }, async () => {
    const cifar = tempDir();
    writeCifar10(cifar, 10, 10);
    writeFileSync(join(cifar, 'data_batch_2.bin'), Buffer.alloc(3073 * 2 + 5));
    const config = parseRunConfig({
      ...tinyRun(),
      dataset: { kind: 'cifar10', root: cifar, imbalanceRatio: 1 },
    });
    const inp = input({ config });
    const local = createLocalDeps();
    let attempts = 0;
    const deps: TrainingDeps = {
      ...local,
      prepareRun(req) {
        attempts++;
        return local.prepareRun(req);
      },
    };
    const handle = await start(inp);
    await withWorker(inp.runId, deps, () =>
      assert.rejects(handle.result(), (err: Error) => {
        let inner = err as Error & { type?: string; nonRetryable?: boolean };
        while (inner.cause) inner = inner.cause as typeof inner;
        assert.match(inner.message, /CIFAR-10 file .*data_batch_2\.bin is truncated/);
        assert.equal(inner.type, 'ConfigError');
        assert.equal(inner.nonRetryable, true);
        return true;
      }),
    );
    await local.dispose();
    assert.equal(attempts, 1, 'not retried');
    assert.deepEqual(readdirSync(inp.outDir), [], 'the run directory is as it was');
  });

  it('cancel mid-epoch writes a mid-epoch checkpoint; a resumed run ends with the same weights', {
    timeout: 90_000,
  }, async () => {
    const inp = input();
    const local = createLocalDeps();
    const handle = await start(inp);
    const deps: TrainingDeps = {
      ...local,
      async trainEpochOnRank(req, ctl) {
        if (req.epoch !== 2) return local.trainEpochOnRank(req, ctl);
        const aborted = new Promise<void>((r) => ctl.signal.addEventListener('abort', () => r()));
        await handle.signal(cancelSignal);
        await aborted; // the cancellation reached this attempt
        let steps = 0;
        // Two more steps after the stop request arrived, as a slow step would be.
        return local.trainEpochOnRank(req, {
          ...ctl,
          heartbeat: (s) => {
            steps++;
            ctl.heartbeat(s);
          },
          shouldStop: () => steps >= 2,
        });
      },
    };
    const stopped = await withWorker(inp.runId, deps, () => handle.result());
    assert.equal(stopped.state, 'cancelled');
    assert.match(
      stopped.checkpoint ?? '',
      // The stop vote rides each step's allreduce: asked after step 2, it ends the run after step 3.
      /ckpt-e000001-s0000003\.bbnckpt$/,
      'epoch 1 done, 3 steps of epoch 2',
    );
    const again = { ...inp, runId: `${inp.runId}-resumed`, resume: true };
    const resumed = await withWorker(again.runId, local, () => start(again).then((h) => h.result()));
    local.dispose();
    assert.equal(resumed.state, 'completed');
    assert.deepEqual(
      resumed.epochs.map((e) => e.epoch),
      [2],
    );
    assert.deepEqual(finalParams(inp.outDir), reference, 'same final weights as an uninterrupted run');
  });

  it('temporalLaunch with a local worker submits, serves and finishes the run (bbn launch without --k8s)', {
    timeout: 90_000,
  }, async () => {
    const outDir = tempDir();
    let printed = '';
    const result = await temporalLaunch(
      {
        temporal: server.address,
        config: tinyConfig(),
        runId: `launch-${process.pid}`,
        outDir,
        workers: 1,
        localWorker: { backend: 'auto' },
      },
      { write: (t: string) => (printed += t) },
    );
    assert.equal(result?.state, 'completed');
    assert.match(printed, /run launch-\d+: submitted .*\n.*completed after 2 epoch\(s\)/);
    assert.deepEqual(finalParams(outDir), reference);
  });

  it('SIGKILL of the Temporal worker process mid-epoch: a new worker finishes the run with the same weights', {
    timeout: 180_000,
  }, async () => {
    const inp = input();
    const bundlePath = await writeWorkflowBundle(join(tempDir(), 'workflows.js'));
    const marker = join(tempDir(), 'held');
    const child = (extra: string[]) => {
      const proc = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          join(import.meta.dirname, 'worker-child.ts'),
          server.address,
          inp.runId,
          bundlePath,
          backend,
          ...extra,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const ready = new Promise<void>((resolve, reject) => {
        proc.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        proc.once('exit', (code, signal) => reject(new Error(`worker child exited (${code ?? signal})`)));
      });
      return { proc, ready };
    };
    const children: ChildProcess[] = [];
    try {
      const first = child(['2', marker]);
      children.push(first.proc);
      await first.ready;
      const handle = await start(inp);
      await waitUntil('epoch 2 to start in the first worker', () => existsSync(marker), 60_000);
      const exited = new Promise((resolve) => first.proc.once('exit', resolve));
      first.proc.kill('SIGKILL');
      await exited;
      const second = child([]);
      children.push(second.proc);
      await second.ready;
      const result = await handle.result();
      assert.equal(result.state, 'completed');
      assert.deepEqual(finalParams(inp.outDir), reference, 'same final weights after the crash');
      const progress = await handle.query(progressQuery);
      assert.equal(progress.failures.length, 0, 'recovered by the activity retry, no epoch restart needed');
    } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
  });
});
