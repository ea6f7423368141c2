/**
 * `npm run test:chaos`: the chaos loop outside the test runner, printing each event as it happens
 * (a long loop is followed live, and a failure shows where it was), then the table. Exits 1 when a
 * run hung, failed, or ended with other weights than its uninterrupted reference.
 *
 *   node --import tsx test/chaos/main.ts [--events 100] [--seed 1] [--set KEY=VALUE ...]
 *
 * --set adds a config override to every run, references included (e.g. --set
 * distributed.compressBf16=true plays the loop with bf16 on the wire).
 */
import { parseArgs } from 'node:util';
import { removeTempDirs, writeTinyConfig } from '../distributed/fixtures.ts';
import { CHAOS_RUN } from './chaos-run.ts';
import { chaosLoop } from './loop.ts';
import { formatTable, summarise } from './table.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    set: { type: 'string', multiple: true, default: [] },
  },
});
const events = Number(values.events);
const seed = Number(values.seed);
const started = performance.now();
const cpu0 = process.cpuUsage();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
const say = (line: string) => process.stdout.write(`[${elapsed()}] ${line}\n`);

let code = 0;
try {
  const result = await chaosLoop({
    seed,
    events,
    configPath: writeTinyConfig(),
    overrides: [...CHAOS_RUN, ...values.set],
    say,
  });
  process.stdout.write(`\n${formatTable(summarise(result.records))}\n`);
  const differ = result.runs.filter((r) => !r.identical);
  const cpu = process.cpuUsage(cpu0);
  say(
    `${result.records.length} events (seed ${seed}${values.set.length ? `; ${values.set.join(' ')}` : ''}) in ${result.runs.length} runs, ${result.references} reference runs; ` +
      `${result.runs.length - differ.length}/${result.runs.length} runs bit-identical; 0 hangs; ` +
      `this process's CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s`,
  );
  if (differ.length > 0 || result.records.length !== events) code = 1;
} catch (err) {
  say(`chaos loop failed: ${(err as Error).stack ?? err}`);
  code = 1;
} finally {
  removeTempDirs();
}
process.exit(code);
