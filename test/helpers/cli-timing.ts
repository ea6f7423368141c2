/**
 * Runs `bbn …` as a user's shell does (a fresh `node bin/bbn.mjs`) and measures it: wall time from
 * spawn to exit, and the process's own CPU time (reported at exit by cpu-at-exit.mjs). Shared by
 * the start-up test and bench/cli-startup.ts.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const ROOT = join(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'bbn.mjs');
const HOOK = pathToFileURL(join(import.meta.dirname, 'cpu-at-exit.mjs')).href;

/** One timed call. */
export interface TimedRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly wallSeconds: number;
  /** User + system CPU seconds of the `bbn` process itself. */
  readonly cpuSeconds: number;
}

/** Runs `bbn args` (env added to this process's) and resolves with its output and times. */
export function timeBbn(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<TimedRun> {
  const dir = mkdtempSync(join(tmpdir(), 'bbn-cpu-'));
  const report = join(dir, 'cpu.json');
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, ['--import', HOOK, BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env, BBN_CPU_REPORT: report },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const wallSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
      try {
        const cpu = JSON.parse(readFileSync(report, 'utf8')) as { user: number; system: number };
        resolve({ code, stdout, stderr, wallSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 });
      } catch (err) {
        reject(
          new Error(`bbn ${args.join(' ')} left no CPU report (exit ${code}): ${stderr}`, { cause: err }),
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
