/**
 * A good run directory to attack and to check afterwards: the tiny run (test/helpers/tiny.ts)
 * trained once per test file, copied per case, and a digest of every file in it, so a test can
 * show that a refused command changed nothing.
 */
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { stringify } from 'yaml';
import { selectBackend } from '../../src/model/backend.ts';
import { runTraining } from '../../src/worker/run.ts';
import { claimRunDir } from '../../src/worker/run-claim.ts';
import { tinyConfig, tinyRun } from './tiny.ts';

/** A fresh temporary directory. */
export const tempDir = (prefix = 'bbn-safety-'): string => mkdtempSync(join(tmpdir(), prefix));

/** SHA-256 of every file under `dir` (relative path → hex); lock files excluded. */
export function digestTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/** The tiny run's extra settings of these fixtures: 2 epochs, every checkpoint kept. */
export const FIXTURE_RUN = { name: 'safety-tiny', train: { epochs: 2 } } as const;

/** Trains the fixture run into a new directory (claimed as `bbn train` does); returns it and the config file. */
export async function trainFixture(
  extra: Record<string, unknown> = {},
): Promise<{ dir: string; configPath: string }> {
  const root = tempDir();
  const configPath = join(root, 'tiny.yaml');
  writeFileSync(configPath, stringify(tinyRun({ ...FIXTURE_RUN, ...extra })));
  const dir = join(root, 'run');
  const cfg = tinyConfig({ ...FIXTURE_RUN, ...extra });
  const claim = claimRunDir(dir, cfg, { resume: false });
  try {
    await runTraining(cfg, dir, { backend: (await selectBackend('auto')).name });
  } finally {
    claim.release();
  }
  return { dir, configPath };
}

/** A copy of the run directory `source` in a new temporary directory. */
export function copyRun(source: string): string {
  const dir = join(tempDir(), 'run');
  cpSync(source, dir, { recursive: true });
  return dir;
}
