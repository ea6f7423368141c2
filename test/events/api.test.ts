import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  EventValidationError,
  encodeTrainingEvent,
  parseRunStatus,
  parseTrainingEvent,
  RunIdError,
  runSubject,
  subjectOf,
  type TrainingEventKind,
} from '../../src/events/index.ts';
import { eventOfEveryKind } from './fixtures.ts';

test('training events - every kind survives encode then parse unchanged', () => {
  const events = eventOfEveryKind();
  const kinds = new Set(events.map((e) => e.kind));
  assert.equal(kinds.size, 10, 'the fixture covers every kind');
  for (const e of events) assert.deepEqual(parseTrainingEvent(encodeTrainingEvent(e)), e);
});

test('training events - each kind goes to its documented subject', () => {
  const want: Record<TrainingEventKind, string> = {
    step: 'metrics',
    alpha: 'epoch',
    'epoch-start': 'epoch',
    'epoch-end': 'epoch',
    checkpoint: 'epoch',
    'run-end': 'epoch',
    'worker-join': 'worker',
    'worker-leave': 'worker',
    'worker-failed': 'worker',
    heartbeat: 'worker',
  };
  for (const e of eventOfEveryKind('r7')) assert.equal(subjectOf(e), `bbn.run.r7.${want[e.kind]}`);
});

test('training events - validation on receive names the bad field', () => {
  const step = eventOfEveryKind()[3];
  const cases: [unknown, string][] = [
    [{ ...step, metadata: { ...step.metadata, loss: 'high' } }, 'metadata.loss'],
    [{ ...step, metadata: { ...step.metadata, allreduceShare: 1.5 } }, 'metadata.allreduceShare'],
    [{ ...step, metadata: { ...step.metadata, extra: 1 } }, 'metadata'],
    [{ ...step, source: { role: 'worker', rank: -1 } }, 'source.rank'],
    [{ ...step, runId: 'a.b' }, 'runId'],
    [{ ...step, kind: 'nope' }, 'kind'],
  ];
  for (const [value, field] of cases) {
    assert.throws(
      () => parseTrainingEvent(JSON.stringify(value)),
      (err: unknown) => err instanceof EventValidationError && err.field === field,
      `expected a complaint about ${field}`,
    );
  }
  assert.throws(() => parseTrainingEvent('{not json'), EventValidationError);
  assert.throws(
    () => parseTrainingEvent(JSON.stringify({ ...step, timestamp: Number.NaN })),
    EventValidationError,
  );
});

test('run ids - a subject-unsafe id is refused with its value', () => {
  assert.equal(runSubject('mnist-lt_01', 'epoch'), 'bbn.run.mnist-lt_01.epoch');
  for (const bad of ['', 'a b', 'x.y', 'a*', 'a>']) {
    assert.throws(
      () => runSubject(bad, 'metrics'),
      (err: unknown) => err instanceof RunIdError && err.runId === bad,
    );
  }
});

test('run status - parse checks the bucket entry', () => {
  const ok = { runId: 'r', state: 'running', epoch: 2, epochs: 10, step: 5, bestTop1: 0.4, updatedAt: 1 };
  assert.deepEqual(parseRunStatus(JSON.stringify(ok)), ok);
  assert.throws(
    () => parseRunStatus(JSON.stringify({ ...ok, state: 'lost' })),
    (err: unknown) => err instanceof EventValidationError && err.field === 'state',
  );
});
