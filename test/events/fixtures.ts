/** One valid event of every kind, for round-trip and watch-state tests. */
import type { TrainingEvent } from '../../src/events/index.ts';

const w0 = { role: 'worker', rank: 0 } as const;
const coord = { role: 'coordinator', rank: null } as const;

/** A table with one event per kind, in a plausible order. */
export function eventOfEveryKind(runId = 'run-1', t0 = 1_700_000_000_000): TrainingEvent[] {
  return [
    { kind: 'worker-join', runId, source: w0, timestamp: t0, metadata: { worldSize: 2 } },
    { kind: 'alpha', runId, source: coord, timestamp: t0 + 1, metadata: { epoch: 3, alpha: 0.91, lr: 0.1 } },
    { kind: 'epoch-start', runId, source: coord, timestamp: t0 + 2, metadata: { epoch: 3, steps: 98 } },
    {
      kind: 'step',
      runId,
      source: w0,
      timestamp: t0 + 3,
      metadata: {
        epoch: 3,
        step: 10,
        loss: 1.25,
        alpha: 0.91,
        lr: 0.1,
        stepsPerSecond: 4.5,
        samplesPerSecond: 576,
        allreduceShare: 0.2,
      },
    },
    { kind: 'heartbeat', runId, source: w0, timestamp: t0 + 4, metadata: { epoch: 3, step: 11 } },
    {
      kind: 'epoch-end',
      runId,
      source: { role: 'trainer', rank: 0 },
      timestamp: t0 + 5,
      metadata: { epoch: 3, trainLoss: 1.1, top1: 0.55, many: 0.8, medium: 0.5, few: null, seconds: 21.5 },
    },
    { kind: 'checkpoint', runId, source: w0, timestamp: t0 + 6, metadata: { epoch: 3, uri: 'file:///r/c3' } },
    {
      kind: 'worker-failed',
      runId,
      source: { role: 'worker', rank: 1 },
      timestamp: t0 + 7,
      metadata: { reason: 'peer lost' },
    },
    {
      kind: 'worker-leave',
      runId,
      source: { role: 'worker', rank: 1 },
      timestamp: t0 + 8,
      metadata: { worldSize: 1 },
    },
    {
      kind: 'run-end',
      runId,
      source: { role: 'workflow', rank: null },
      timestamp: t0 + 9,
      metadata: { state: 'completed', reason: null },
    },
  ];
}
