/**
 * `bbn train --workers W` on one machine: an in-process coordinator and W child processes
 * `bbn worker …` on loopback, their output forwarded with a `[rank r]` prefix.
 *
 * Shutdown is never partial (FAILURE-LESSONS 1-2): when any child dies abnormally the others are
 * killed and the launch fails with an error naming the first failing rank, its exit code or
 * signal and the tail of its log. Ctrl-C (or `signal`) forwards SIGINT to every child, so the
 * world agrees to stop after one step and rank 0 checkpoints; a second Ctrl-C kills them.
 */
import type { ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ResumePoint } from '../coordinator/api.ts';
import { CoordinatorServer } from '../coordinator/server.ts';
import { ConfigError } from '../core/config.ts';
import { loadData } from '../data/load.ts';
import { describeExit, type LineChild, spawnLineChild } from '../supervisor/child-process.ts';
import { loadLatestGood } from '../worker/checkpoint.ts';
import { runPaths } from '../worker/run-dir.ts';
import { readRunIdentity } from '../worker/run-identity.ts';
import { loadRunConfig } from './config-file.ts';

/** Options of `launchLocal`. */
export interface LaunchOptions {
  /** Run config file (ignored on resume: the run directory's saved config is used). */
  readonly configPath?: string;
  /** KEY=VALUE overrides. */
  readonly overrides?: readonly string[];
  /** Run directory. */
  readonly outDir: string;
  /** Number of worker processes W >= 1. */
  readonly workers: number;
  /** Continue from rank 0's newest good checkpoint in `outDir`. */
  readonly resume?: boolean;
  /** Command that starts one worker, before its options; default `node bin/bbn.mjs worker`. */
  readonly workerCommand?: readonly string[];
  /** Aborting it is Ctrl-C: the world stops after one step with a checkpoint. */
  readonly signal?: AbortSignal;
  /** Where the children's prefixed lines go; default this process's stdout/stderr. */
  readonly onLine?: (rank: number, line: string, stream: 'stdout' | 'stderr') => void;
  /** Called once per child after it was spawned (tests use it to inject faults). */
  readonly onSpawn?: (rank: number, child: ChildProcess) => void;
  /** Membership timings of the in-process coordinator. */
  readonly heartbeatIntervalMs?: number;
  readonly heartbeatTimeoutMs?: number;
}

/** How a local launch ended. */
export interface LaunchOutcome {
  readonly kind: 'finished' | 'stopped';
  readonly coordinator: string;
  readonly seconds: number;
}

/** A worker died: names the first failing rank, how it ended and the tail of its log. */
export class WorkerFailedError extends Error {
  override name = 'WorkerFailedError';
  readonly userFacing = true;
  constructor(
    readonly rank: number,
    readonly exitCode: number | null,
    readonly exitSignal: NodeJS.Signals | null,
    readonly tail: readonly string[],
  ) {
    super(
      `worker rank ${rank} ${describeExit({ code: exitCode, signal: exitSignal })}; the other ranks were stopped. Last lines of rank ${rank}:\n  ${tail.join('\n  ')}`,
    );
  }
}

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'bbn.mjs');
/** Grace between SIGTERM and SIGKILL for the survivors of a failure. */
const KILL_GRACE_MS = 3_000;

interface Child extends LineChild {
  readonly rank: number;
}

/** Starts a coordinator and W workers, and resolves when they all finished or stopped in order. */
export async function launchLocal(opts: LaunchOptions): Promise<LaunchOutcome> {
  const started = performance.now();
  const W = opts.workers;
  if (!Number.isInteger(W) || W < 1) throw new ConfigError(`--workers (${W}) must be an integer >= 1`);
  const outDir = resolve(opts.outDir);
  const configPath = opts.resume ? runPaths(outDir).config : opts.configPath;
  if (!configPath) throw new ConfigError('launchLocal needs a config file (or resume)');
  const overrides = [...(opts.overrides ?? []), `distributed.workers=${W}`];
  const cfg = loadRunConfig(configPath, overrides);
  let resume: ResumePoint | undefined;
  if (opts.resume) {
    const latest = loadLatestGood(runPaths(outDir).checkpoints, {
      run: readRunIdentity(outDir),
      finite: true,
    });
    if (!latest) throw new ConfigError(`--resume ${outDir}: no checkpoint to resume from`);
    const { epoch, step } = latest.checkpoint.meta;
    resume = { epoch: epoch + 1, step, checkpointUri: latest.path };
  }
  const data = await loadData(cfg.dataset);
  const server = new CoordinatorServer(
    { runId: cfg.name, cfg, labels: data.train.labels, numClasses: data.train.numClasses, resume },
    {
      clock: { now: () => performance.now() },
      timings: {
        ...(opts.heartbeatIntervalMs ? { heartbeatIntervalMs: opts.heartbeatIntervalMs } : {}),
        ...(opts.heartbeatTimeoutMs ? { heartbeatTimeoutMs: opts.heartbeatTimeoutMs } : {}),
      },
    },
  );
  const coordinator = await server.start({ host: '127.0.0.1', port: 0 });
  const command = opts.workerCommand ?? [process.execPath, BIN, 'worker'];
  const emit =
    opts.onLine ??
    ((rank: number, line: string, stream: 'stdout' | 'stderr') =>
      (stream === 'stdout' ? process.stdout : process.stderr).write(`[rank ${rank}] ${line}\n`));
  const children: Child[] = [];
  let interrupts = 0;
  const interrupt = () => {
    interrupts++;
    for (const c of children) if (!c.exit) c.proc.kill(interrupts > 1 ? 'SIGKILL' : 'SIGINT');
  };
  process.on('SIGINT', interrupt);
  opts.signal?.addEventListener('abort', interrupt, { once: true });
  let killTimer: NodeJS.Timeout | undefined;
  try {
    for (let rank = 0; rank < W; rank++) {
      const args = [
        ...command.slice(1),
        '--coordinator',
        coordinator,
        '--config',
        configPath,
        '--out',
        outDir,
        '--rank',
        String(rank),
        ...overrides,
      ];
      // Object.assign keeps the object whose `exit` the spawn helper sets.
      const child: Child = Object.assign(
        spawnLineChild(command[0], args, (line, stream) => emit(rank, line, stream)),
        { rank },
      );
      children.push(child);
      opts.onSpawn?.(rank, child.proc);
    }
    // The first abnormal exit fails the launch; a clean exit waits for the others.
    const failed = await new Promise<Child | undefined>((done) => {
      let left = W;
      for (const c of children) {
        c.exited.then(() => {
          if (c.exit?.code !== 0) done(c);
          else if (--left === 0) done(undefined);
        });
      }
    });
    if (failed) {
      for (const c of children) if (!c.exit) c.proc.kill('SIGTERM');
      killTimer = setTimeout(() => {
        for (const c of children) if (!c.exit) c.proc.kill('SIGKILL');
      }, KILL_GRACE_MS);
      await Promise.all(children.map((c) => c.exited));
      throw new WorkerFailedError(
        failed.rank,
        failed.exit?.code ?? null,
        failed.exit?.signal ?? null,
        failed.tail,
      );
    }
    return {
      kind: interrupts > 0 ? 'stopped' : 'finished',
      coordinator,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    if (killTimer) clearTimeout(killTimer);
    for (const c of children) if (!c.exit) c.proc.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    process.off('SIGINT', interrupt);
    opts.signal?.removeEventListener('abort', interrupt);
    await server.close();
  }
}
