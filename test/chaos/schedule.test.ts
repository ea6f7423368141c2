/** The chaos schedule (seeded, pure) and its table: what a seed gives and how the numbers are summarised. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CHAOS_KINDS,
  type ChaosRunPlan,
  chaosSchedule,
  DEFAULT_SCHEDULE,
  formatSchedule,
  RESTART_KINDS,
} from './schedule.ts';
import { type ChaosRecord, formatTable, p50, summarise } from './table.ts';

const events = (runs: readonly ChaosRunPlan[]) => runs.flatMap((r) => r.events);

describe('chaos schedule - seeded', () => {
  it('the same seed gives the same schedule; another seed another one', () => {
    const a = chaosSchedule(7, { ...DEFAULT_SCHEDULE, events: 100 });
    assert.deepEqual(chaosSchedule(7, { ...DEFAULT_SCHEDULE, events: 100 }), a);
    assert.notDeepEqual(chaosSchedule(8, { ...DEFAULT_SCHEDULE, events: 100 }), a);
    assert.equal(
      formatSchedule(7, a),
      formatSchedule(7, chaosSchedule(7, { ...DEFAULT_SCHEDULE, events: 100 })),
    );
  });

  it('a shorter schedule is the start of a longer one (the CI version plays the first events)', () => {
    const long = events(chaosSchedule(1, { ...DEFAULT_SCHEDULE, events: 100 }));
    const short = events(chaosSchedule(1, { ...DEFAULT_SCHEDULE, events: 10 }));
    assert.deepEqual(
      short.map((e) => e.kind),
      long.slice(0, 10).map((e) => e.kind),
    );
  });

  it('every six events cover all six kinds; 100 events give each kind 16 or 17', () => {
    for (const seed of [1, 2, 3, 99]) {
      const all = events(chaosSchedule(seed, { ...DEFAULT_SCHEDULE, events: 100 }));
      assert.deepEqual(
        all.map((e) => e.index),
        Array.from({ length: 100 }, (_, i) => i),
      );
      for (let i = 0; i + 6 <= 96; i += 6) {
        assert.deepEqual(
          new Set(all.slice(i, i + 6).map((e) => e.kind)),
          new Set(CHAOS_KINDS),
          `seed ${seed} deck ${i / 6}`,
        );
      }
      for (const kind of CHAOS_KINDS) {
        const n = all.filter((e) => e.kind === kind).length;
        assert.ok(n === 16 || n === 17, `seed ${seed}: ${kind} ${n} times`);
      }
    }
  });

  it('a run holds at most 6 events, 3 lost ranks and 2 scale changes; targets are in the world of the moment', () => {
    for (const seed of [1, 2, 3, 99]) {
      for (const run of chaosSchedule(seed, { ...DEFAULT_SCHEDULE, events: 100 })) {
        assert.ok(run.events.length >= 1 && run.events.length <= DEFAULT_SCHEDULE.perRun);
        assert.ok(run.events.filter((e) => RESTART_KINDS.has(e.kind)).length <= 3);
        assert.ok(run.events.filter((e) => e.kind === 'scale').length <= 2);
        let world = DEFAULT_SCHEDULE.baseWorkers;
        for (const e of run.events) {
          if (e.kind === 'scale') {
            assert.equal(Math.abs((e.workers ?? 0) - world), 1, 'a scale moves the world by one');
            world = e.workers ?? world;
            assert.ok(world >= DEFAULT_SCHEDULE.baseWorkers && world <= DEFAULT_SCHEDULE.maxWorkers);
          } else if (RESTART_KINDS.has(e.kind)) {
            assert.ok(
              e.rank !== undefined && e.rank >= 0 && e.rank < world,
              `rank ${e.rank} in a world of ${world}`,
            );
          } else {
            assert.equal(e.rank, undefined);
          }
        }
      }
    }
  });

  it('refuses a bad shape, naming it', () => {
    assert.throws(() => chaosSchedule(1, { ...DEFAULT_SCHEDULE, events: -1 }), /chaos events \(-1\)/);
    assert.throws(
      () => chaosSchedule(1, { ...DEFAULT_SCHEDULE, events: 5, maxWorkers: 2 }),
      /maxWorkers \(2\)/,
    );
  });
});

describe('chaos table - per kind p50 and max', () => {
  const rec = (
    kind: ChaosRecord['kind'],
    detectMs: number,
    recoverMs: number,
    restarts = 0,
  ): ChaosRecord => ({
    index: 0,
    run: 0,
    kind,
    target: '',
    at: '',
    detectMs,
    recoverMs,
    restarts,
  });

  it('p50 is the lower middle; empty is NaN', () => {
    assert.equal(p50([3, 1, 2]), 2);
    assert.equal(p50([4, 1, 3, 2]), 2);
    assert.ok(Number.isNaN(p50([])));
  });

  it('summarises by kind in the fixed order, skipping kinds that did not occur', () => {
    const rows = summarise([
      rec('scale', 100, 9000),
      rec('rank-kill', 1000, 8000, 1),
      rec('rank-kill', 3000, 12000, 1),
      rec('rank-kill', 2000, 10000, 2),
    ]);
    assert.deepEqual(
      rows.map((r) => [
        r.kind,
        r.count,
        r.detectP50Ms,
        r.detectMaxMs,
        r.recoverP50Ms,
        r.recoverMaxMs,
        r.restarts,
      ]),
      [
        ['rank-kill', 3, 2000, 3000, 10000, 12000, 4],
        ['scale', 1, 100, 100, 9000, 9000, 0],
      ],
    );
    const text = formatTable(rows);
    assert.match(text, /\| rank-kill +\| 3 +\| 2\.0 +\| 3\.0 +\| 10\.0 +\| 12\.0 +\| 4 +\|/);
    assert.equal(text.split('\n').length, 4);
  });
});
