/**
 * The paper's analysis figures and the long-schedule table on MNIST-LT, one command each
 * (docs/analysis.md):
 *
 *   node --import tsx bench/analysis/run.ts STUDY [--seeds 0,1,2] [--epochs N] [--shard I/N] [--render-only]
 *
 * STUDY is `norms` (classifier weight norms per class, the paper's Fig. 4), `decouple` (the
 * representation × classifier grid, Fig. 2), `alpha` (the α schedules, Table 4), `sampler` (the
 * re-balancing branch's sampler, Table 3), `regime` (BBN against CE, RW, RS, DRW and decoupling at
 * IR 100 and 10), or `all` (every job of every study, then every study rendered).
 * It trains the study's jobs that have no result yet (`jobs.ts`; `--shard I/N` takes every N-th,
 * so N processes share the work and an interrupted study resumes), then from the results present
 * writes `bench/analysis/results/STUDY.json`, the PNG under `docs/analysis/` and the study's
 * section of docs/analysis.md (between its `<!-- analysis:STUDY -->` markers).
 *
 * `--epochs N` (default 12) trains and renders the study at N epochs in the same schedule shape
 * (`scheduleOf` in jobs.ts: the paper's 200-epoch schedule scaled), as separate jobs
 * (`eN-ir100-bbn-s0`) and artefacts (`STUDY-eN.json`, `STUDY-eN.png`, the `analysis:STUDY-eN`
 * section), so the 12-epoch results stay. The regime study at N epochs also compares BBN's
 * training trajectory with its 12-epoch runs of the same seeds. A regime sweep runs all seeds of
 * IR 100 before IR 10.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { selectBackend } from '../../src/model/backend.ts';
import { EPOCHS, RUNS, runJob, scheduleOf } from './jobs.ts';
import { jobsOf, resultsOf, STUDIES, type Study } from './studies.ts';

function fail(message: string): never {
  process.stderr.write(`bench/analysis/run.ts: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      seeds: { type: 'string', default: '0,1,2' },
      shard: { type: 'string', default: '0/1' },
      epochs: { type: 'string', default: String(EPOCHS) },
      'render-only': { type: 'boolean', default: false },
    },
  });
  const study = positionals[0];
  if (positionals.length !== 1 || !(study === 'all' || (STUDIES as readonly string[]).includes(study))) {
    fail(`give one study: ${[...STUDIES, 'all'].join(', ')} (got ${positionals.join(' ') || 'none'})`);
  }
  const seeds = values.seeds.split(',').map(Number);
  if (seeds.some((s) => !Number.isInteger(s) || s < 0)) fail(`--seeds ${values.seeds}: want e.g. 0,1,2`);
  const epochs = Number(values.epochs);
  try {
    scheduleOf(epochs); // the one rule for a run length
  } catch (err) {
    fail(`--epochs: ${(err as Error).message}`);
  }
  const m = /^(\d+)\/(\d+)$/.exec(values.shard);
  const [index, count] = m ? [Number(m[1]), Number(m[2])] : [-1, 0];
  if (!m || count < 1 || index >= count) fail(`--shard ${values.shard}: want I/N with 0 <= I < N`);
  const studies: Study[] = study === 'all' ? [...STUDIES] : [study as Study];
  // `all`: the first seed of every study, then the other seeds study by study, the cheaper and
  // more used jobs first (norms and decoupling share theirs with the regime table, the sampler
  // then the α schedules last), so that a sweep stopped early leaves one seed of everything and
  // as many seeds as it reached of the rest. The first seed's jobs keep their places in the list
  // whatever the other seeds are, so shards started with other --seeds never run one job twice.
  const seen = new Set<string>();
  const order: [Study, number][] =
    study === 'all'
      ? [
          ...STUDIES.map((s): [Study, number] => [s, seeds[0]]),
          ...(['norms', 'decouple', 'regime', 'sampler', 'alpha'] as const).flatMap((s) =>
            seeds.slice(1).map((seed): [Study, number] => [s, seed]),
          ),
        ]
      : seeds.map((seed): [Study, number] => [study as Study, seed]);
  const jobs = order
    .flatMap(([s, seed]) => jobsOf(s, seed, epochs))
    .sort((a, b) => (study === 'regime' ? b.ir - a.ir : 0))
    .filter((j) => !seen.has(j.id) && seen.add(j.id));
  if (!values['render-only']) {
    mkdirSync(RUNS, { recursive: true });
    const backend = await selectBackend('auto', { threads: 1 });
    const command = `node --import tsx bench/analysis/run.ts ${process.argv.slice(2).join(' ')}`;
    process.stdout.write(`${jobs.length} jobs, shard ${index}/${count}, backend ${backend.name}\n`);
    for (const [i, j] of jobs.entries()) {
      if (i % count !== index || existsSync(join(RUNS, `${j.id}.json`))) continue;
      const r = await runJob(j, command);
      const cls = Object.entries(r.classifiers)
        .map(([k, v]) => ` ${k} ${(100 * v.top1).toFixed(1)}`)
        .join('');
      process.stdout.write(
        `${new Date().toISOString()} ${j.id}: top-1 ${(100 * r.final.top1).toFixed(1)}` +
          `${cls ? ` (classifier retrained:${cls})` : ''}, ${r.wallSeconds.toFixed(0)} s wall, ${r.cpuSeconds.toFixed(0)} s CPU\n`,
      );
    }
  }
  const { renderStudy } = await import('./figures.ts');
  for (const s of studies) {
    const results = resultsOf(seeds.flatMap((seed) => jobsOf(s, seed, epochs)));
    // At other lengths the regime section sets BBN's and CE's trajectories beside the 12-epoch runs.
    const reference =
      s === 'regime' && epochs !== EPOCHS ? resultsOf(seeds.flatMap((seed) => jobsOf(s, seed, EPOCHS))) : [];
    process.stdout.write(`${await renderStudy(s, results, seeds, epochs, reference)}\n`);
  }
}

await main();
