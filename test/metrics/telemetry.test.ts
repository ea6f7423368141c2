/**
 * Telemetry hooks against a recording sink and the process's Prometheus registry: what each role
 * publishes, the KV status it keeps, and that no hook can throw or hold a process.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { epochSchedule } from '../../src/core/epoch-schedule.ts';
import type { EventSink, PublisherStats, RunStatus, TrainingEvent } from '../../src/events/index.ts';
import { type StepSample, startTelemetry } from '../../src/metrics/telemetry.ts';
import { tinyConfig } from '../helpers/tiny.ts';
import { parseExposition, sampleValue } from './exposition.ts';

/** An in-memory sink: every event and status, in order. */
class RecordingSink implements EventSink {
  readonly events: TrainingEvent[] = [];
  readonly statuses: RunStatus[] = [];
  publish(e: TrainingEvent): boolean {
    this.events.push(e);
    return true;
  }
  setStatus(s: RunStatus): void {
    this.statuses.push(s);
  }
  stats(): PublisherStats {
    return {
      connected: true,
      queued: 0,
      published: this.events.length,
      dropped: 0,
      throttled: 0,
      statusWrites: this.statuses.length,
      statusFailures: 0,
      lastError: null,
    };
  }
  async close(): Promise<void> {}
  kinds(): string[] {
    return this.events.map((e) => e.kind);
  }
}

const cfg = tinyConfig({
  method: 'bbn',
  train: { epochs: 4 },
  checkpoint: { everyEpochs: 2 },
  distributed: { workers: 2 },
});

const step = (epoch: number, s: number, extra: Partial<StepSample> = {}): StepSample => ({
  epoch,
  step: s,
  steps: 5,
  loss: 1.5,
  alpha: 0.9,
  lr: 0.05,
  computeSeconds: 0.03,
  reduceSeconds: 0.01,
  ...extra,
});

const epochRow = (epoch: number, top1: number) => ({
  epoch,
  trainLoss: 1.2,
  testTop1: top1,
  many: 0.8,
  medium: 0.4,
  few: null,
  seconds: 2,
});

test('telemetry - a non-owner rank publishes its steps and Prometheus series, nothing run-wide', async () => {
  const sink = new RecordingSink();
  const t = await startTelemetry({ runId: 'r', cfg, role: 'worker', rank: 1, sink, now: () => 1000 });
  t.onStep(step(1, 1, { allreduceBytes: 4096 }));
  t.onStep(step(1, 2));
  await t.close({ state: 'completed' });
  assert.deepEqual(sink.kinds(), ['step', 'step']);
  assert.deepEqual(sink.statuses, []);
  const e = sink.events[0];
  assert.equal(e.kind, 'step');
  assert.deepEqual(e.source, { role: 'worker', rank: 1 });
  if (e.kind === 'step') {
    // Per-rank rows: global batch 16 over 2 ranks, 8 rows in 0.04 s.
    assert.ok(Math.abs(e.metadata.samplesPerSecond - 200) < 1e-9);
    assert.ok(Math.abs(e.metadata.stepsPerSecond - 25) < 1e-9);
    assert.ok(Math.abs(e.metadata.allreduceShare - 0.25) < 1e-9);
  }
  const m = parseExposition(await t.training!.registry.metrics());
  const l = { run: 'r', rank: '1' };
  assert.equal(sampleValue(m, 'bbn_step_seconds_count', l), 2);
  assert.equal(sampleValue(m, 'bbn_allreduce_seconds_count', l), 2);
  assert.equal(sampleValue(m, 'bbn_allreduce_bytes', l), 4096, 'the last known size stays');
  assert.equal(sampleValue(m, 'bbn_epoch', l), 1);
  assert.equal(sampleValue(m, 'bbn_alpha', l), epochSchedule(cfg, 1).alpha);
  assert.equal(sampleValue(m, 'bbn_train_loss', l), 1.5, "the last step's loss");
  assert.equal(
    sampleValue(m, 'bbn_heartbeat_age_seconds', l),
    0,
    'a step is a heartbeat (the clock is fixed)',
  );
});

test('telemetry - top-1 of the last evaluated epoch; the heartbeat age grows from the last step', async () => {
  let now = 1000;
  const t = await startTelemetry({
    runId: 'r',
    cfg,
    role: 'trainer',
    sink: new RecordingSink(),
    now: () => now,
  });
  const l = { run: 'r', rank: '0' };
  let m = parseExposition(await t.training!.registry.metrics());
  assert.equal(sampleValue(m, 'bbn_heartbeat_age_seconds', l), undefined, 'no step yet: no age');
  t.onStep(step(1, 1, { loss: 2.25 }));
  t.onEpoch(epochRow(1, 0.625));
  now += 2500;
  m = parseExposition(await t.training!.registry.metrics());
  assert.equal(sampleValue(m, 'bbn_train_loss', l), 2.25);
  assert.equal(sampleValue(m, 'bbn_test_top1', l), 0.625);
  assert.equal(sampleValue(m, 'bbn_heartbeat_age_seconds', l), 2.5);
  await t.close();
});

test('telemetry - the one-process trainer announces each epoch once (its own α broadcast), reports epochs, due checkpoints and the KV status', async () => {
  const sink = new RecordingSink();
  let now = 1000;
  const t = await startTelemetry({
    runId: 'r',
    cfg,
    role: 'trainer',
    rank: 0,
    sink,
    now: () => now,
    checkpointUri: (e, s) => `file:///ck/${e}-${s}`,
  });
  for (let epoch = 1; epoch <= 2; epoch++) {
    for (let s = 1; s <= 3; s++) {
      t.onStep(step(epoch, s));
      now += 10;
    }
    t.onEpoch(epochRow(epoch, epoch === 1 ? 0.5 : 0.4));
  }
  await t.close({ state: 'completed' });
  assert.deepEqual(sink.kinds(), [
    ...['alpha', 'epoch-start', 'step', 'step', 'step', 'epoch-end'],
    ...['alpha', 'epoch-start', 'step', 'step', 'step', 'epoch-end', 'checkpoint'],
    'run-end',
  ]);
  const alpha2 = sink.events.filter((e) => e.kind === 'alpha')[1];
  assert.deepEqual(alpha2.metadata, { epoch: 2, ...epochSchedule(cfg, 2) });
  const ckpt = sink.events.find((e) => e.kind === 'checkpoint');
  assert.deepEqual(ckpt?.metadata, { epoch: 2, uri: 'file:///ck/2-0' }, 'everyEpochs 2: epoch 1 is not due');
  const last = sink.statuses.at(-1)!;
  assert.deepEqual(
    { state: last.state, epoch: last.epoch, epochs: last.epochs, bestTop1: last.bestTop1 },
    { state: 'completed', epoch: 2, epochs: 4, bestTop1: 0.5 },
  );
  assert.ok(sink.statuses.slice(0, -1).every((s) => s.state === 'running'));
});

test('telemetry - a stop is a paused status without run-end; a failure names its reason', async () => {
  const paused = new RecordingSink();
  const a = await startTelemetry({ runId: 'r', cfg, role: 'trainer', sink: paused });
  a.onStep(step(1, 1));
  await a.close({ state: 'paused', reason: 'stopped after epoch 0 step 1' });
  assert.equal(paused.statuses.at(-1)?.state, 'paused');
  assert.ok(!paused.kinds().includes('run-end'));
  assert.deepEqual(paused.events[0].source, { role: 'trainer', rank: 0 });

  const failed = new RecordingSink();
  const b = await startTelemetry({ runId: 'r', cfg, role: 'worker', rank: 1, sink: failed });
  await b.close({ state: 'failed', reason: 'PeerLostError: rank 0 gone' });
  assert.deepEqual(
    failed.events.map((e) => [e.kind, e.source.rank, e.metadata]),
    [['worker-failed', 1, { reason: 'PeerLostError: rank 0 gone' }]],
  );
});

test('telemetry - hooks never throw, even when the sink does or a loss is NaN', async () => {
  const broken: EventSink = {
    publish: () => {
      throw new Error('sink exploded');
    },
    setStatus: () => {
      throw new Error('sink exploded');
    },
    stats: () => new RecordingSink().stats(),
    close: async () => {},
  };
  const t = await startTelemetry({ runId: 'r', cfg, role: 'worker', rank: 0, sink: broken });
  t.onStep(step(1, 1));
  t.onStep(step(1, 2, { loss: Number.NaN }));
  t.onEpoch(epochRow(1, 0.3));
  t.epochPlan({ epoch: 2, alpha: Number.NaN, lr: 0.1, steps: 5 });
  await t.close({ state: 'completed' });
  const m = parseExposition(await t.training!.registry.metrics());
  assert.equal(sampleValue(m, 'bbn_step_seconds_count', { run: 'r', rank: '0' }), 2, 'Prometheus saw both');
});

test('telemetry - a NATS that never answers neither delays start nor holds close', async () => {
  const t0 = performance.now();
  const t = await startTelemetry({
    runId: 'r',
    cfg,
    role: 'worker',
    rank: 0,
    natsUrl: 'nats://127.0.0.1:1',
    closeTimeoutMs: 300,
  });
  for (let i = 1; i <= 100; i++) t.onStep(step(1, i));
  await t.close({ state: 'completed' });
  const ms = performance.now() - t0;
  assert.ok(ms < 2000, `start + 100 steps + close took ${ms.toFixed(0)} ms`);
  assert.equal(t.stats().connected, false);
});

test('telemetry - the coordinator mirrors the α/lr broadcast and membership, with per-rank heartbeat ages', async () => {
  const sink = new RecordingSink();
  const t = await startTelemetry({
    runId: 'r',
    cfg,
    role: 'coordinator',
    sink,
    metricsPort: 0,
    now: () => 50_000,
  });
  try {
    assert.equal(t.training, null);
    t.runStatus('starting');
    t.epochPlan({ epoch: 3, alpha: 0.4375, lr: 0.05, steps: 5 });
    const ranks = (s1: 'alive' | 'dead') => [
      { rank: 0, status: 'alive' as const, heartbeatAgeMs: 250, epoch: 3, step: 2 },
      { rank: 1, status: s1, heartbeatAgeMs: 6000, epoch: 3, step: 1 },
    ];
    t.observeMembership({ generation: 1, ranks: ranks('alive'), firstFailure: null, consequences: [] });
    t.observeMembership({
      generation: 1,
      ranks: ranks('dead'),
      firstFailure: { generation: 1, rank: 1, cause: 'no heartbeat for 5000 ms' },
      consequences: [],
    });
    assert.deepEqual(
      sink.statuses.map((s) => s.state),
      ['starting'],
    );
    assert.deepEqual(
      sink.events.map((e) => `${e.kind}:${e.source.role}/${e.source.rank}`),
      [
        'alpha:coordinator/null',
        'worker-join:worker/0',
        'heartbeat:worker/0',
        'worker-join:worker/1',
        'heartbeat:worker/1',
        'heartbeat:worker/0',
        'worker-failed:worker/1',
      ],
    );
    const res = await fetch(t.metricsUrl!);
    const m = parseExposition(await res.text());
    assert.equal(sampleValue(m, 'bbn_epoch', { run: 'r' }), 3);
    assert.equal(sampleValue(m, 'bbn_alpha', { run: 'r' }), 0.4375);
    assert.equal(sampleValue(m, 'bbn_heartbeat_age_seconds', { run: 'r', rank: '0' }), 0.25);
    assert.equal(
      sampleValue(m, 'bbn_heartbeat_age_seconds', { run: 'r', rank: '1' }),
      undefined,
      'dead rank',
    );
    assert.equal(sampleValue(m, 'bbn_ranks', { run: 'r', status: 'dead' }), 1);
    assert.equal(sampleValue(m, 'bbn_rank_failures_total', { run: 'r' }), 1);
  } finally {
    await t.close();
  }
  await assert.rejects(fetch(t.metricsUrl!), 'the endpoint is closed with the telemetry');
});
