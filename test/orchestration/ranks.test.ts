/**
 * The workflow's multi-rank structure with plain-object deps (no training): one Temporal worker
 * per rank queue, a failing rank cancels its peers and the epoch restarts as a new generation,
 * the restart budget is kept in workflow state, and state survives continue-as-new.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type WorkflowBundle } from '@temporalio/worker';
import { Command } from 'commander';
import { registerRunCommands, temporalScale, temporalStatus } from '../../src/cli/run-commands.ts';
import type { CoordinatorDeps, RankControl, TrainingDeps } from '../../src/orchestration/activities.ts';
import {
  coordinatorTaskQueue,
  rankTaskQueue,
  type TrainingInput,
  type TrainRequest,
} from '../../src/orchestration/api.ts';
import { runHandle, runStatus, startRun } from '../../src/orchestration/client.ts';
import { createTrainingWorker, trainingWorkflowBundle } from '../../src/orchestration/worker.ts';
import { startTestTemporal, type TestServer, waitUntil } from '../helpers/servers.ts';
import { TEST_TIMEOUTS, tinyConfig } from './fixtures.ts';

let server: TestServer;
let connection: Connection;
let nativeConnection: NativeConnection;
let client: Client;
let bundle: WorkflowBundle;
let runs = 0;

before(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  [server, bundle] = await Promise.all([startTestTemporal(), trainingWorkflowBundle()]);
  connection = await Connection.connect({ address: server.address });
  nativeConnection = await NativeConnection.connect({ address: server.address });
  client = new Client({ connection });
});

after(async () => {
  await connection?.close();
  await nativeConnection?.close();
  await server?.stop();
});

/** Deps that train nothing: `train` decides what each rank's call does. */
function fakeDeps(train: (req: TrainRequest, ctl: RankControl) => Promise<void>): TrainingDeps {
  return {
    prepareRun: async () => ({ startEpoch: 1, checkpoint: null }),
    async trainEpochOnRank(req, ctl) {
      await train(req, ctl);
      return { epoch: req.epoch, rank: req.rank, steps: 5, trainLoss: 1, trainAccuracy: 0.5, seconds: 0 };
    },
    evaluateAndCheckpoint: async (req) => ({
      epoch: req.epoch,
      alpha: 1,
      lr: 0.1,
      trainLoss: 1,
      testTop1: 0.5,
      many: null,
      medium: null,
      few: null,
      checkpoint: `mem://ckpt-${req.epoch}-g${req.generation}`,
    }),
    checkpointNow: async () => null,
    finishRun: async () => {},
  };
}

/** A coordinator that plans 5-step epochs and forms every generation at once (the ranks' addresses are never dialled). */
const fakeCoordinator: CoordinatorDeps = {
  planEpoch: async (req) => ({ epoch: req.epoch, alpha: 1, lr: 0.1, steps: 5 }),
  formGeneration: async (req) => Array.from({ length: req.world }, (_, rank) => `rank-${rank}.invalid:1`),
};

/** Runs `body` while one worker per rank serves the run, and the coordinator's hosts the workflow. */
async function withRanks<T>(
  runId: string,
  world: number,
  deps: TrainingDeps,
  body: () => Promise<T>,
): Promise<T> {
  const workers = await Promise.all([
    createTrainingWorker({
      connection: nativeConnection,
      taskQueue: coordinatorTaskQueue(runId),
      coordinator: fakeCoordinator,
      workflows: bundle,
    }),
    ...Array.from({ length: world }, (_, rank) =>
      createTrainingWorker({ connection: nativeConnection, taskQueue: rankTaskQueue(runId, rank), deps }),
    ),
  ]);
  const [first, ...rest] = workers;
  return first.runUntil(async () => {
    const others = rest.map((w) => w.run());
    try {
      return await body();
    } finally {
      for (const w of rest) w.shutdown();
      await Promise.all(others);
    }
  });
}

function input(extra: Partial<TrainingInput> = {}): TrainingInput {
  runs++;
  return {
    runId: `r${process.pid}-${runs}`,
    config: tinyConfig(3),
    outDir: '/nonexistent/fake-run',
    workers: 2,
    timeouts: TEST_TIMEOUTS,
    restart: { initialBackoffMs: 50, maxRestarts: 2 },
    ...extra,
  };
}

describe('bbnTraining with several ranks', () => {
  it('a failing rank cancels its peer within seconds and the epoch restarts as the next generation', {
    timeout: 60_000,
  }, async () => {
    const inp = input();
    const calls: string[] = [];
    let peerStoppedAfterMs = -1;
    const deps = fakeDeps(async (req, ctl) => {
      calls.push(`e${req.epoch} r${req.rank} g${req.generation}`);
      if (req.epoch !== 2 || req.generation !== 0) return;
      if (req.rank === 1) {
        await waitUntil('rank 0 to start', () => calls.includes('e2 r0 g0'), 10_000);
        throw new Error('rank 1 lost its GPU');
      }
      const t0 = Date.now();
      await new Promise<void>((resolve) => ctl.signal.addEventListener('abort', () => resolve()));
      peerStoppedAfterMs = Date.now() - t0;
    });
    const handle = await startRun(client, inp);
    const [result, status] = await withRanks(inp.runId, 2, deps, async () => [
      await handle.result(),
      await runStatus(client, inp.runId),
    ]);
    assert.equal(result.state, 'completed');
    assert.deepEqual(
      result.epochs.map((e) => e.checkpoint),
      ['mem://ckpt-1-g0', 'mem://ckpt-2-g1', 'mem://ckpt-3-g1'],
    );
    assert.equal(result.generation, 1);
    assert.ok(
      peerStoppedAfterMs >= 0 && peerStoppedAfterMs < 5_000,
      `peer stopped after ${peerStoppedAfterMs} ms`,
    );
    assert.equal(status.failures.length, 1);
    assert.equal(status.failures[0].rank, 1, 'the failure names the failing rank');
    assert.equal(status.failures[0].epoch, 2);
    assert.match(status.failures[0].message, /rank 1 lost its GPU/);
    assert.equal(status.restartsUsed, 1);
    assert.ok(calls.includes('e2 r0 g1') && calls.includes('e2 r1 g1'), calls.join(', '));
  });

  it('a rank that keeps failing exhausts the restart budget and fails the run naming it', {
    timeout: 60_000,
  }, async () => {
    const inp = input({ restart: { initialBackoffMs: 50, maxRestarts: 2 } });
    let attempts = 0;
    const deps = fakeDeps(async (req) => {
      if (req.rank === 1) {
        attempts++;
        throw new Error('rank 1 crashes');
      }
    });
    const handle = await startRun(client, inp);
    await withRanks(inp.runId, 2, deps, () =>
      assert.rejects(handle.result(), (err: Error) => {
        assert.equal((err.cause as { type?: string }).type, 'RestartBudgetExhausted');
        assert.match(String(err.cause), /restart budget \(2\) exhausted at epoch 1/);
        return true;
      }),
    );
    assert.equal(attempts, 3, 'the first try and two restarts, no in-place retries with peers');
  });

  it('continues as new between epochs and carries epoch, generation and summaries', {
    timeout: 60_000,
  }, async () => {
    const inp = input({ workers: 1, epochsPerExecution: 1 });
    const handle = await startRun(client, inp);
    const result = await withRanks(
      inp.runId,
      1,
      fakeDeps(async () => {}),
      () => runHandle(client, inp.runId).result(),
    );
    assert.equal(result.state, 'completed');
    assert.deepEqual(
      result.epochs.map((e) => e.epoch),
      [1, 2, 3],
    );
    const first = await client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId).describe();
    assert.equal(first.status.name, 'CONTINUED_AS_NEW');
  });

  it("status shows a rank's live step; pause, scale and cancel work from the CLI", {
    timeout: 60_000,
  }, async () => {
    const inp = input({ workers: 1 });
    let reached: () => void = () => {};
    const atStep3 = new Promise<void>((r) => {
      reached = r;
    });
    const deps = fakeDeps(async (_req, ctl) => {
      ctl.heartbeat(3, { computeSeconds: 0.5, reduceSeconds: 0.125 });
      reached();
      await new Promise<void>((r) => ctl.signal.addEventListener('abort', () => r()));
    });
    let printed = '';
    const out = { write: (t: string) => (printed += t) };
    const program = new Command().exitOverride();
    registerRunCommands(program, out);
    const cli = (...args: string[]) =>
      program.parseAsync(['node', 'bbn', ...args, '--temporal', server.address]);
    await startRun(client, inp);
    await withRanks(inp.runId, 1, deps, async () => {
      await atStep3;
      await waitUntil(
        'rank 0 heartbeat at step 3',
        async () => (await runStatus(client, inp.runId)).ranks[0]?.step === 3,
        10_000,
      );
      await cli('pause', inp.runId);
      assert.match(printed, /pause requested/);
      await temporalScale(inp.runId, 2, { temporal: server.address }, out);
      const status = await temporalStatus(inp.runId, { temporal: server.address }, out);
      assert.ok('ranks' in status, 'a running run has a live status');
      assert.equal(status.pendingWorkers, 2);
      assert.equal(status.pauseRequested, true);
      assert.match(
        printed,
        /run r\d+-\d+: training \(RUNNING\), epoch 1\/3, workers 1 -> 2 at the next epoch/,
      );
      assert.match(printed, /rank 0: epoch 1 step 3, generation 0, attempt 1/);
      assert.match(
        printed,
        /step: compute 0\.50 s, allreduce 0\.13 s/,
        "the rank's step times from its heartbeat",
      );
      await cli('cancel', inp.runId);
      assert.match(printed, /: cancelled; final checkpoint -/);
    });
  });

  it('workflow cancellation stops the ranks, still writes the final checkpoint, and ends cancelled', {
    timeout: 60_000,
  }, async () => {
    const inp = input({ workers: 1 });
    let started: () => void = () => {};
    const training = new Promise<void>((r) => {
      started = r;
    });
    const checkpoints: number[] = [];
    const deps: TrainingDeps = {
      ...fakeDeps(async (_req, ctl) => {
        started();
        await new Promise<void>((r) => ctl.signal.addEventListener('abort', () => r()));
      }),
      checkpointNow: async (req) => {
        checkpoints.push(req.epoch);
        return `mem://stop-${req.epoch}`;
      },
    };
    const handle = await startRun(client, inp);
    await withRanks(inp.runId, 1, deps, async () => {
      await training;
      await handle.cancel();
      await assert.rejects(handle.result(), (err: Error) => {
        assert.equal((err.cause as Error).name, 'CancelledFailure', String(err.cause));
        return true;
      });
    });
    assert.deepEqual(checkpoints, [1], 'one final checkpoint, in epoch 1');
  });
});
