/**
 * The workflow host's telemetry against a recording sink: `paused` only while paused, the end as
 * the last status with one `run-end`, a left rank named as its own source; and the run position
 * the CLI reads from a run directory (a stop mid-epoch is where its checkpoint says).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { positionOf } from '../../src/cli/host-telemetry.ts';
import type { EventSink, PublisherStats, RunStatus, TrainingEvent } from '../../src/events/index.ts';
import { startRunHost } from '../../src/metrics/run-host.ts';
import { tinyConfig } from '../helpers/tiny.ts';

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
}

const cfg = tinyConfig({ train: { epochs: 4 } });

test('run host - paused while paused, a left rank, then the end as the last word', async () => {
  const sink = new RecordingSink();
  const host = startRunHost({ runId: 'r', cfg, sink, now: () => 5 });
  host.progress('training', { epoch: 1, step: 0, bestTop1: null });
  assert.equal(sink.statuses.length, 0, 'training: the ranks write the status');
  host.progress('paused', { epoch: 2, step: 0, bestTop1: 0.5 });
  host.rankLeft(1, 1);
  await host.end({ state: 'cancelled', reason: 'stopped' }, { epoch: 2, step: 3, bestTop1: 0.5 });
  host.progress('paused', { epoch: 2, step: 0, bestTop1: 0.5 });
  await host.end({ state: 'completed' }, { epoch: 4, step: 0, bestTop1: 0.6 });
  assert.deepEqual(
    sink.statuses.map((s) => [s.state, s.epoch, s.epochs, s.step, s.bestTop1]),
    [
      ['paused', 2, 4, 0, 0.5],
      ['cancelled', 2, 4, 3, 0.5],
    ],
    'nothing after the end',
  );
  assert.deepEqual(
    sink.events.map((e) => [e.kind, e.source, e.metadata]),
    [
      ['worker-leave', { role: 'worker', rank: 1 }, { worldSize: 1 }],
      ['run-end', { role: 'workflow', rank: null }, { state: 'cancelled', reason: 'stopped' }],
    ],
  );
});

test('run host - without NATS every call is a no-op', async () => {
  const host = startRunHost({ runId: 'not a subject token', cfg });
  host.progress('paused', { epoch: 1, step: 0, bestTop1: null });
  await host.end({ state: 'completed' }, { epoch: 1, step: 0, bestTop1: null });
});

test('positionOf - completed epochs and best top-1 from metrics.jsonl; a mid-epoch stop from its checkpoint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bbn-position-'));
  try {
    assert.deepEqual(positionOf(dir), { epoch: 0, step: 0, bestTop1: null });
    writeFileSync(
      join(dir, 'metrics.jsonl'),
      `${JSON.stringify({ epoch: 1, testTop1: 0.25 })}\n${JSON.stringify({ epoch: 2, testTop1: 0.5 })}\n`,
    );
    assert.deepEqual(positionOf(dir), { epoch: 2, step: 0, bestTop1: 0.5 });
    assert.deepEqual(positionOf(dir, '/x/checkpoints/ckpt-e000002-s0000017.bbnckpt'), {
      epoch: 2,
      step: 17,
      bestTop1: 0.5,
    });
    assert.deepEqual(
      positionOf(dir, '/x/checkpoints/ckpt-e000001-s0000000.bbnckpt'),
      { epoch: 2, step: 0, bestTop1: 0.5 },
      'an older boundary checkpoint does not move the position back',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
