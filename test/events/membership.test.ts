import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type MembershipMemory,
  type MembershipSnapshot,
  membershipEvents,
  type RankSnapshot,
  validateTrainingEvent,
} from '../../src/events/index.ts';

const rank = (r: number, status: RankSnapshot['status'], heartbeatAgeMs = 100): RankSnapshot => ({
  rank: r,
  status,
  heartbeatAgeMs,
  epoch: 2,
  step: 3,
});
const snap = (
  generation: number,
  ranks: RankSnapshot[],
  failures: [number, string][] = [],
): MembershipSnapshot => {
  const fs = failures.map(([r, cause]) => ({ generation, rank: r, cause }));
  return { generation, ranks, firstFailure: fs[0] ?? null, consequences: fs.slice(1) };
};

test('membership events - joins, leaves, failures with their cause, and a new generation re-joins', () => {
  const table: { name: string; snapshot: MembershipSnapshot; want: string[] }[] = [
    { name: 'not formed yet', snapshot: snap(0, []), want: [] },
    {
      name: 'generation 1 forms',
      snapshot: snap(1, [rank(0, 'alive'), rank(1, 'alive')]),
      want: ['worker-join 0 {"worldSize":2}', 'heartbeat 0', 'worker-join 1 {"worldSize":2}', 'heartbeat 1'],
    },
    {
      name: 'rank 1 leaves in order',
      snapshot: snap(1, [rank(0, 'alive'), rank(1, 'left')]),
      want: ['heartbeat 0', 'worker-leave 1 {"worldSize":1}'],
    },
    {
      name: 'a left rank stays quiet',
      snapshot: snap(1, [rank(0, 'alive'), rank(1, 'left')]),
      want: ['heartbeat 0'],
    },
    {
      name: 'rank 0 dies: the coordinator’s cause travels',
      snapshot: snap(1, [rank(0, 'dead'), rank(1, 'left')], [[0, 'no heartbeat for 5000 ms']]),
      want: ['worker-failed 0 {"reason":"no heartbeat for 5000 ms"}'],
    },
    {
      name: 'generation 2 forms with one rank',
      snapshot: snap(2, [rank(0, 'alive')]),
      want: ['worker-join 0 {"worldSize":1}', 'heartbeat 0'],
    },
  ];
  let memory: MembershipMemory = new Map();
  for (const row of table) {
    const out = membershipEvents('run-m', memory, row.snapshot, 10_000);
    memory = out.memory;
    for (const e of out.events) validateTrainingEvent(e);
    const got = out.events.map((e) =>
      e.kind === 'heartbeat'
        ? `heartbeat ${e.source.rank}`
        : `${e.kind} ${e.source.rank} ${JSON.stringify(e.metadata)}`,
    );
    assert.deepEqual(got, row.want, row.name);
  }
});

test('membership events - a heartbeat carries the time of the rank’s last heartbeat, not the publisher’s', () => {
  const { events } = membershipEvents('run-m', new Map(), snap(1, [rank(0, 'alive', 2_500)]), 10_000);
  const hb = events.find((e) => e.kind === 'heartbeat');
  assert.equal(hb?.timestamp, 7_500);
  assert.deepEqual(hb?.metadata, { epoch: 2, step: 3 });
  assert.deepEqual(hb?.source, { role: 'worker', rank: 0 });
});
