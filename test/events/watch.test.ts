import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { formatRunsTable, formatWatchTable, watchRun } from '../../src/cli/watch-command.ts';
import { applyEvent, EventPublisher, emptyWatchState } from '../../src/events/index.ts';
import { startTestNats, waitUntil } from '../helpers/servers.ts';
import { eventOfEveryKind } from './fixtures.ts';

const T0 = 1_700_000_000_000;

test('watch state - folds every kind into per-worker rows and run facts', () => {
  const state = emptyWatchState('run-1');
  for (const e of eventOfEveryKind('run-1', T0)) applyEvent(state, e);
  applyEvent(state, { ...eventOfEveryKind('other', T0)[3] }); // another run: ignored
  assert.equal(state.events, 10);
  assert.equal(state.epoch, 3);
  assert.equal(state.alpha, 0.91);
  assert.equal(state.epochSteps, 98);
  assert.equal(state.lastTop1, 0.55);
  assert.equal(state.lastCheckpoint, 'file:///r/c3');
  assert.deepEqual(state.ended, { state: 'completed', reason: null });
  const w0 = state.workers.get('worker/0')!;
  assert.equal(w0.step, 11, 'the heartbeat after the step moved it on');
  assert.equal(w0.loss, 1.25);
  assert.equal(w0.allreduceShare, 0.2);
  assert.equal(w0.lastSeen, T0 + 6);
  const w1 = state.workers.get('worker/1')!;
  assert.equal(w1.failed, 'peer lost');
  assert.equal(w1.left, true);
});

test('watch table - one row per source with rates, α, lr, allreduce share and heartbeat age', () => {
  const state = emptyWatchState('run-1');
  for (const e of eventOfEveryKind('run-1', T0)) applyEvent(state, e);
  const text = formatWatchTable(state, T0 + 6 + 2500);
  const lines = text.split('\n');
  assert.match(lines[0], /^run run-1 {2}epoch 3 {2}α 0\.910 {2}lr 0\.100 {2}last top-1 55\.0%/);
  assert.match(lines[0], /\[run completed\]/);
  assert.match(
    lines[1],
    /source +epoch +step +steps\/s +samples\/s +loss +α +lr +allreduce % +heartbeat +status/,
  );
  const row = (src: string) => lines.find((l) => l.startsWith(src))!;
  assert.match(
    row('worker 0'),
    /worker 0 +3 +11\/98 +4\.50 +576 +1\.2500 +0\.910 +0\.100 +20\.0 +2\.5s ago +ok/,
  );
  assert.match(row('worker 1'), /failed: peer lost/);
  assert.match(row('trainer 0'), /trainer 0 .* ok$/);
  assert.equal(formatWatchTable(emptyWatchState('x'), 0).split('\n')[1], '(no worker heard from yet)');
});

test('runs table - newest first, epoch of epochs, best top-1 in percent', () => {
  const text = formatRunsTable(
    [
      { runId: 'b', state: 'running', epoch: 3, epochs: 10, step: 7, bestTop1: 0.456, updatedAt: 9_000 },
      { runId: 'a', state: 'completed', epoch: 10, epochs: null, step: 99, bestTop1: null, updatedAt: 0 },
    ],
    10_000,
  );
  const [, , b, a] = text.split('\n');
  assert.match(b, /^b +running +3\/10 +7 +45\.6 +1\.0s ago$/);
  assert.match(a, /^a +completed +10 +99 +- +10s ago$/);
  assert.equal(formatRunsTable([], 0), 'no runs recorded in the bbn-runs bucket');
});

test('bbn watch - follows a live run over NATS and ends when the run ends', async () => {
  const nats = await startTestNats();
  const pub = EventPublisher.start({ servers: nats.address, flushIntervalMs: 5 });
  let text = '';
  const out = new Writable({
    write(chunk, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  try {
    const watching = watchRun({ nats: nats.address, runId: 'live', out, tty: true, refreshMs: 20 });
    await waitUntil('first frame', () => text.length > 0, 10_000);
    await pub.ready();
    const now = Date.now();
    for (const e of eventOfEveryKind('live', now)) pub.publish(e);
    const state = await watching;
    assert.equal(state.ended?.state, 'completed');
    assert.equal(state.workers.size, 3);
    assert.ok(text.includes('\x1b[J'), 'TTY frames clear in place');
    assert.match(text, /\[run completed\]/);
  } finally {
    await pub.close();
    await nats.stop();
  }
});
