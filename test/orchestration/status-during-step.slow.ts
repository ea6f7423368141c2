/**
 * `bbn status` while a step of 10 s or more computes: a W=1 `bbn train` (the workflow, its
 * coordinator and the rank in one process, the model on its compute thread) is asked for its
 * status every 200 ms through a real Temporal server; every answer given while the run trains
 * must come within a second. The step's length is measured (metrics.jsonl), not assumed, so the
 * test cannot pass on steps too short to matter. Minutes of CPU, so outside `npm test`:
 * `npm run test:long-step`.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { trainDurably } from '../../src/cli/durable-train.ts';
import { runStatus } from '../../src/orchestration/client.ts';
import { readMetrics } from '../../src/worker/run-dir.ts';
import { startTestTemporal, type TestServer } from '../helpers/servers.ts';
import { tinyConfig } from '../helpers/tiny.ts';
import { tempDir } from './fixtures.ts';

/** One step of at least 10 s here: BBN-ResNet-32 of width 16, 32x32x3 images, batch 512+512, one thread. */
const LONG_STEP = tinyConfig({
  name: 'long-step',
  dataset: { numClasses: 4, perClass: 256, testPerClass: 4, imageSize: 32, channels: 3, imbalanceRatio: 1 },
  model: { depth: 32, baseWidth: 16 },
  train: { epochs: 1, batchSize: 512 },
  eval: { batchSize: 16 },
  compute: { threads: 1 },
});
const MIN_STEP_S = 10;
const ANSWER_BOUND_MS = 1_000;

let server: TestServer;
before(async () => {
  server = await startTestTemporal();
});
after(async () => {
  await server?.stop();
});

describe('status during a long step', () => {
  it('answers within 1 s while the rank is inside a step of 10 s or more', {
    timeout: 300_000,
  }, async (t) => {
    const outDir = tempDir();
    const runId = `long-step-${process.pid}`;
    const connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection });
    const answers: number[] = [];
    let done = false;
    const poller = (async () => {
      while (!done) {
        const asked = performance.now();
        const s = await runStatus(client, runId).catch(() => undefined);
        if (s?.state === 'training') answers.push(performance.now() - asked);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    try {
      const result = await trainDurably({
        cfg: LONG_STEP,
        outDir,
        workers: 1,
        resume: false,
        runId,
        temporal: server.address,
        say: () => {},
      });
      assert.equal(result.state, 'completed');
    } finally {
      done = true;
      await poller;
      await connection.close();
    }
    const [row] = readMetrics(outDir);
    const steps = Math.floor((4 * 256) / 512);
    const stepSeconds = row.seconds / steps;
    const sorted = [...answers].sort((a, b) => a - b);
    const worst = sorted.at(-1) ?? Number.NaN;
    t.diagnostic(
      `${steps} steps of ${stepSeconds.toFixed(1)} s; ${answers.length} status answers while training: ` +
        `median ${sorted[Math.floor(sorted.length / 2)]?.toFixed(0)} ms, worst ${worst.toFixed(0)} ms`,
    );
    assert.ok(stepSeconds >= MIN_STEP_S, `steps of ${stepSeconds.toFixed(1)} s are too short to matter`);
    assert.ok(
      answers.length >= (steps * MIN_STEP_S * 1000) / 400,
      `only ${answers.length} answers while training`,
    );
    assert.ok(worst < ANSWER_BOUND_MS, `the slowest status answer took ${worst.toFixed(0)} ms`);
  });
});
