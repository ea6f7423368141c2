/**
 * The chaos loop's 10-event version (`npm run test:chaos:10`): the first events of seed 1's
 * schedule (all six kinds) on small real runs in the chart's process layout; 0 hangs, every run
 * completes bit-identical to an uninterrupted run with the same world sizes, and the table of
 * detection and recovery times is printed. Not in `npm test`: measured at 845 s wall on the shared
 * 2-core machine (two runs, two reference runs), far over what CI can add. The 100-event loop is
 * `npm run test:chaos` (main.ts). BBN_CHAOS_SEED and BBN_CHAOS_EVENTS change the seed and length.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { removeTempDirs, writeTinyConfig } from '../distributed/fixtures.ts';
import { CHAOS_RUN } from './chaos-run.ts';
import { chaosLoop } from './loop.ts';
import { CHAOS_KINDS } from './schedule.ts';
import { formatTable, summarise } from './table.ts';

const SEED = Number(process.env.BBN_CHAOS_SEED ?? 1);
const EVENTS = Number(process.env.BBN_CHAOS_EVENTS ?? 10);

after(removeTempDirs);

describe('chaos loop - seeded faults on real runs (chart layout)', () => {
  it(`${EVENTS} events of seed ${SEED}: no hang, every run completes bit-identical`, {
    timeout: 3_600_000,
  }, async (t) => {
    const started = performance.now();
    const result = await chaosLoop({
      seed: SEED,
      events: EVENTS,
      configPath: writeTinyConfig(),
      overrides: CHAOS_RUN,
      say: (line) => t.diagnostic(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${line}`),
    });
    for (const line of formatTable(summarise(result.records)).split('\n')) t.diagnostic(line);
    t.diagnostic(
      `${result.records.length} events in ${result.runs.length} runs (+${result.references} uninterrupted reference runs), ` +
        `${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    assert.equal(result.records.length, EVENTS, 'every scheduled event was injected');
    for (const r of result.runs)
      assert.ok(r.identical, `run ${r.runId} (worlds ${r.worlds.join(',')}) bit-identical`);
    if (EVENTS >= CHAOS_KINDS.length) {
      assert.deepEqual(
        new Set(result.records.map((r) => r.kind)),
        new Set(CHAOS_KINDS),
        'every kind was played',
      );
    }
  });
});
