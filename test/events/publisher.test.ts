import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { connect } from 'nats';
import { freePort, startNatsServer } from '../../src/devservers/index.ts';
import {
  EventPublisher,
  listRunStatuses,
  type RunStatus,
  subscribeRun,
  type TrainingEvent,
} from '../../src/events/index.ts';
import { startTestNats, waitUntil } from '../helpers/servers.ts';

const heartbeat = (runId: string, step: number): TrainingEvent => ({
  kind: 'heartbeat',
  runId,
  source: { role: 'worker', rank: 0 },
  timestamp: Date.now(),
  metadata: { epoch: 0, step },
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test('publisher - events reach a subscriber and statuses reach the bbn-runs bucket', async () => {
  const nats = await startTestNats();
  const pub = EventPublisher.start({ servers: nats.address, flushIntervalMs: 10 });
  const nc = await connect({ servers: nats.address });
  try {
    const got: TrainingEvent[] = [];
    let done!: () => void;
    const all = new Promise<void>((r) => {
      done = r;
    });
    const sub = subscribeRun(nc, 'pub-a', {
      onEvent: (e) => {
        got.push(e);
        if (got.length === 3) done();
      },
    });
    await nc.flush();
    await pub.ready();
    for (let i = 0; i < 3; i++) pub.publish(heartbeat('pub-a', i));
    await all;
    assert.deepEqual(
      got.map((e) => (e.kind === 'heartbeat' ? e.metadata.step : -1)),
      [0, 1, 2],
    );
    sub.unsubscribe();

    const status: RunStatus = {
      runId: 'pub-a',
      state: 'running',
      epoch: 3,
      epochs: 10,
      step: 40,
      bestTop1: 0.5,
      updatedAt: 5,
    };
    pub.setStatus({ ...status, epoch: 2 });
    pub.setStatus(status); // coalesced: the latest wins
    await waitUntil('status written', () => pub.stats().statusWrites >= 1, 10_000);
    assert.deepEqual(await listRunStatuses(nc), [status]);
  } finally {
    await pub.close();
    await nc.close();
    await nats.stop();
  }
});

test('publisher - step events are throttled per source', () => {
  let now = 0;
  const pub = EventPublisher.start({ servers: 'nats://127.0.0.1:1', stepIntervalMs: 500, now: () => now });
  try {
    const step = (rank: number): TrainingEvent => ({
      kind: 'step',
      runId: 'thr',
      source: { role: 'worker', rank },
      timestamp: now,
      metadata: {
        epoch: 0,
        step: 0,
        loss: 1,
        alpha: 1,
        lr: 0.1,
        stepsPerSecond: 1,
        samplesPerSecond: 1,
        allreduceShare: 0,
      },
    });
    assert.equal(pub.publish(step(0)), true);
    now = 100;
    assert.equal(pub.publish(step(0)), false, 'same source within 500 ms');
    assert.equal(pub.publish(step(1)), true, 'another rank has its own budget');
    now = 600;
    assert.equal(pub.publish(step(0)), true);
    assert.equal(pub.stats().throttled, 1);
  } finally {
    void pub.close();
  }
});

test('publisher - a full queue drops the oldest events and counts them', () => {
  const pub = EventPublisher.start({ servers: 'nats://127.0.0.1:1', queueSize: 4 });
  try {
    for (let i = 0; i < 10; i++) pub.publish(heartbeat('full', i));
    assert.equal(pub.stats().queued, 4);
    assert.equal(pub.stats().dropped, 6);
  } finally {
    void pub.close();
  }
});

test('publisher - killing nats-server never blocks or throws, and events flow after restart', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'bbn-nats-'));
  const port = await freePort();
  let server = await startNatsServer({ port, dataDir });
  const pub = EventPublisher.start({
    servers: server.address,
    queueSize: 256,
    flushIntervalMs: 5,
    reconnectTimeWaitMs: 100,
  });
  const watcher = await connect({
    servers: server.address,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  });
  try {
    await pub.ready();
    const times: number[] = [];
    const timed = (step: number) => {
      const t = performance.now();
      pub.publish(heartbeat('kill', step)); // must not throw: an exception fails the test
      times.push(performance.now() - t);
    };
    for (let i = 0; i < 200; i++) {
      timed(i);
      if (i % 20 === 0) await yieldLoop();
    }
    const stopping = server.stop();
    for (let i = 200; i < 5200; i++) {
      timed(i);
      if (i % 50 === 0) await yieldLoop(); // let the timer and the socket run while the server dies
    }
    await stopping;
    await waitUntil('publisher notices the loss', () => !pub.stats().connected, 10_000);
    for (let i = 5200; i < 10_200; i++) {
      timed(i);
      if (i % 50 === 0) await yieldLoop();
    }
    const stats = pub.stats();
    const sorted = [...times].sort((a, b) => a - b);
    t.diagnostic(
      `publish() over ${times.length} calls across a server kill: median ${(1000 * median(times)).toFixed(2)} µs, ` +
        `p99 ${(1000 * sorted[Math.floor(0.99 * sorted.length)]).toFixed(2)} µs, max ${sorted.at(-1)!.toFixed(3)} ms; ` +
        `dropped ${stats.dropped}`,
    );
    assert.ok(median(times) < 1, `median publish() time ${median(times).toFixed(4)} ms must be < 1 ms`);
    assert.ok(stats.dropped > 0, 'with NATS down the bounded queue overflowed and dropped');
    assert.ok(stats.queued <= 256);

    server = await startNatsServer({ port, dataDir });
    await waitUntil('publisher reconnects', () => pub.stats().connected, 15_000);
    let seen!: (e: TrainingEvent) => void;
    const arrived = new Promise<TrainingEvent>((r) => {
      seen = r;
    });
    // A flush round trip, not `info` (which keeps the old connection's), proves the watcher is back.
    await waitUntil(
      'watcher reconnects',
      () =>
        watcher.flush().then(
          () => true,
          () => false,
        ),
      15_000,
    );
    subscribeRun(watcher, 'kill', {
      onEvent: (e) => {
        if (e.kind === 'heartbeat' && e.metadata.step === 99_999) seen(e);
      },
    });
    await watcher.flush(); // the subscription is registered before the event is published
    pub.publish(heartbeat('kill', 99_999));
    const e = await arrived;
    assert.equal(e.kind, 'heartbeat');
  } finally {
    await pub.close();
    await watcher.close();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
