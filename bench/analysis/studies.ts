/** The studies of bench/analysis (run.ts) and the jobs each needs (jobs.ts), seed by seed. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ALPHA_SCHEDULES } from '../../src/core/config.ts';
import { EPOCHS, type Job, type JobMethod, type JobResult, job as jobOf, RUNS } from './jobs.ts';

export const STUDIES = ['norms', 'decouple', 'alpha', 'sampler', 'regime'] as const;
export type Study = (typeof STUDIES)[number];

/**
 * The jobs of a study for one seed at `epochs` epochs. The regime's list is BBN, CE and RS first
 * (the paper's method and its two main foils), so a sweep stopped early has those.
 */
export function jobsOf(study: Study, seed: number, epochs = EPOCHS): Job[] {
  const job = (ir: number, method: JobMethod, s: number, opts: Parameters<typeof jobOf>[3] = {}) =>
    jobOf(ir, method, s, { ...opts, epochs });
  switch (study) {
    case 'norms':
      return (['ce', 'rw', 'rs', 'bbn'] as const).map((m) => job(100, m, seed));
    case 'decouple':
      return (['ce', 'rw', 'rs'] as const).map((m) => job(100, m, seed));
    case 'alpha':
      return ALPHA_SCHEDULES.map((alpha) => job(100, 'bbn', seed, { alpha }));
    case 'sampler':
      return (['reversed', 'balanced', 'uniform'] as const).map((sampler) =>
        job(100, 'bbn', seed, { sampler }),
      );
    case 'regime':
      return [100, 10].flatMap((ir) =>
        (['bbn', 'ce', 'rs', 'rw', 'drw'] as const).map((m) => job(ir, m, seed)),
      );
  }
}

/** The finished results among `jobs`. */
export function resultsOf(jobs: readonly Job[]): JobResult[] {
  return jobs
    .map((j) => join(RUNS, `${j.id}.json`))
    .filter((f) => existsSync(f))
    .map((f) => JSON.parse(readFileSync(f, 'utf8')) as JobResult);
}
