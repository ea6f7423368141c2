/**
 * Multi-rank durable runs with real training: W ranks, each a Temporal worker on its own queue
 * with its own compute thread and ring peer server, heartbeating to the run's coordinator (the
 * rendezvous). Ranks served in this process end bit-identical to the same run as `bbn train
 * --workers 2` runs it (rank processes); scaling 2 -> 3 -> 2 at epoch boundaries ends where the
 * unscaled run does.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type WorkflowBundle } from '@temporalio/worker';
import type { TrainingInput } from '../../src/orchestration/api.ts';
import { runHandle, scaleRun, startRun } from '../../src/orchestration/client.ts';
import { hostCoordinator } from '../../src/orchestration/coordinator-host.ts';
import { serveRank } from '../../src/orchestration/rank-worker.ts';
import { trainingWorkflowBundle } from '../../src/orchestration/worker.ts';
import type { EpochMetrics } from '../../src/worker/run-dir.ts';
import { readMetrics } from '../../src/worker/run-dir.ts';
import {
  finalParams,
  launch,
  removeTempDirs,
  tempDir,
  tinyConfig,
  writeTinyConfig,
} from '../distributed/fixtures.ts';
import { startTestTemporal, type TestServer } from '../helpers/servers.ts';
import { TEST_TIMEOUTS } from './fixtures.ts';

let server: TestServer;
let connection: Connection;
let client: Client;
let bundle: WorkflowBundle;
let configPath: string;
let runs = 0;

before(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  [server, bundle] = await Promise.all([startTestTemporal(), trainingWorkflowBundle()]);
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  configPath = writeTinyConfig();
});

after(async () => {
  await connection?.close();
  await server?.stop();
  removeTempDirs();
});

/**
 * Serves ranks 0..maxRanks-1 of `runId` in this process, each heartbeating to the run's
 * coordinator (also served here, with the workflow) while `body` runs.
 */
async function withRanks<T>(
  runId: string,
  maxRanks: number,
  body: () => Promise<T>,
  onEpoch?: (row: EpochMetrics) => Promise<void>,
): Promise<T> {
  const native = await NativeConnection.connect({ address: server.address });
  const coordinator = await hostCoordinator({
    connection: native,
    runId,
    workflows: bundle,
    bind: { host: '127.0.0.1', port: 0 },
  });
  const stop = new AbortController();
  const ready: Promise<void>[] = [];
  const serving = Array.from({ length: maxRanks }, (_, rank) => {
    let markReady = () => {};
    ready.push(new Promise<void>((r) => (markReady = r)));
    return serveRank({
      address: server.address,
      runId,
      rank,
      signal: stop.signal,
      onReady: markReady,
      onEpoch: rank === 0 ? onEpoch : undefined,
      coordinator: {
        address: coordinator.address ?? '',
        beat: () => ({ phase: 'idle', epoch: 0, step: 0, progressAgeMs: 0 }),
      },
    });
  });
  const failed = Promise.race(serving).then(() => {
    throw new Error('a rank worker stopped before the run ended');
  });
  try {
    return await coordinator.worker.runUntil(async () => {
      await Promise.race([Promise.all(ready), failed]);
      return await Promise.race([body(), failed]);
    });
  } finally {
    stop.abort();
    await Promise.allSettled(serving);
    await coordinator.close();
    await native.close();
  }
}

function input(config: unknown, workers: number): TrainingInput {
  runs++;
  return {
    runId: `mr${process.pid}-${runs}`,
    config,
    outDir: tempDir(),
    workers,
    timeouts: TEST_TIMEOUTS,
    restart: { initialBackoffMs: 100 },
  };
}

describe('multi-rank durable runs (one Temporal worker, trainer and ring per rank)', () => {
  it('W=2 with ranks served in this process ends bit-identical to bbn train --workers 2 (rank processes)', {
    timeout: 120_000,
  }, async () => {
    const plainDir = tempDir();
    const plain = await launch({
      configPath,
      outDir: plainDir,
      workers: 2,
      overrides: ['train.epochs=2'],
      temporal: server.address,
    });
    assert.equal(plain.outcome.kind, 'finished');

    const cfg = { ...tinyConfig(), train: { ...tinyConfig().train, epochs: 2 } };
    const inp = input(cfg, 2);
    const result = await withRanks(inp.runId, 2, async () => (await startRun(client, inp)).result());
    assert.equal(result.state, 'completed');
    assert.deepEqual(
      result.epochs.map((e) => e.epoch),
      [1, 2],
    );
    assert.deepEqual(finalParams(inp.outDir), finalParams(plainDir), 'bit-identical final weights');
    const loss = (dir: string) => readMetrics(dir).map((m) => [m.epoch, m.trainLoss, m.testTop1]);
    assert.deepEqual(loss(inp.outDir), loss(plainDir), 'same per-epoch loss and top-1');
  });

  it('scaled 2 -> 3 -> 2 at epoch boundaries, a decoupled run ends where the unscaled one does', {
    timeout: 180_000,
  }, async (t) => {
    // Stage 1 (BatchNorm active) trains at W=2 in both runs; the classifier epochs are BN-free,
    // so their sums are world-size invariant up to fp32 summation order.
    const base = tinyConfig();
    const cfg = { ...base, method: 'decouple', train: { ...base.train, epochs: 1, decoupleEpochs: 2 } };
    const unscaled = input(cfg, 2);
    const want = await withRanks(unscaled.runId, 2, async () => (await startRun(client, unscaled)).result());
    assert.equal(want.state, 'completed');

    const scaled = input(cfg, 2);
    const plan = new Map([
      [1, 3],
      [2, 2],
    ]);
    const requested: number[] = [];
    const got = await withRanks(
      scaled.runId,
      3,
      async () => (await startRun(client, scaled)).result(),
      async (row) => {
        // Requested while rank 0 evaluates epoch e, so it applies from epoch e+1.
        const w = plan.get(row.epoch);
        if (w !== undefined) requested.push(await scaleRun(client, scaled.runId, w));
      },
    );
    assert.deepEqual(requested, [3, 2]);
    assert.equal(got.state, 'completed');
    assert.equal(got.generation, 2, 'each change of world size is a new generation');
    const history = await runHandle(client, scaled.runId).fetchHistory();
    const trained = new Map<number, Set<number>>();
    for (const e of history.events ?? []) {
      const a = e.activityTaskScheduledEventAttributes;
      if (a?.activityType?.name !== 'trainEpoch') continue;
      const queue = a.taskQueue?.name ?? '';
      const rank = Number(queue.slice(queue.lastIndexOf('-') + 1));
      const req = JSON.parse(Buffer.from(a.input?.payloads?.[0]?.data ?? []).toString()) as { epoch: number };
      trained.set(req.epoch, (trained.get(req.epoch) ?? new Set()).add(rank));
    }
    assert.deepEqual(
      [...trained].map(([epoch, ranks]) => [epoch, ranks.size]),
      [
        [1, 2],
        [2, 3],
        [3, 2],
      ],
      'epoch 1 on 2 ranks, epoch 2 on 3, epoch 3 on 2',
    );
    const a = finalParams(scaled.outDir);
    const b = finalParams(unscaled.outDir);
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(b[i]));
    }
    t.diagnostic(`scaled vs unscaled: max |diff| ${diff.toExponential(3)} of max |w| ${scale.toFixed(4)}`);
    assert.ok(
      diff / scale < 1e-5,
      `scaled run differs by ${diff} (max |w| ${scale}); tolerance 1e-5 relative`,
    );
  });
});
