/**
 * `bbn worker --coordinator HOST:PORT --config FILE --out DIR [--rank R] [KEY=VALUE …]` runs one
 * rank of a distributed run. Ctrl-C / SIGTERM ask the whole world to stop after the current step
 * (rank 0 checkpoints). Exits 0 when the run finished or stopped in order, 1 when this rank
 * failed (the reason is the last line on stderr), so a supervisor can replace it.
 */
import type { Command } from 'commander';
import { ConfigError } from '../core/config.ts';
import { runWorker } from '../worker/process/worker.ts';
import { loadRunConfig } from './config-file.ts';

/** Options of `bbn worker`. */
export interface WorkerCommandOptions {
  readonly coordinator: string;
  readonly config: string;
  readonly out: string;
  readonly rank?: string;
  readonly runId?: string;
  readonly host: string;
  readonly advertise?: string;
}

/** Runs the worker; resolves with the process exit code (0 finished or stopped, 1 failed). */
export async function runWorkerCommand(
  overrides: readonly string[],
  opts: WorkerCommandOptions,
): Promise<number> {
  let rank: number | undefined;
  if (opts.rank !== undefined) {
    rank = Number(opts.rank);
    if (!Number.isInteger(rank) || rank < 0) {
      throw new ConfigError(`--rank (${opts.rank}) must be an integer >= 0`);
    }
  }
  const cfg = loadRunConfig(opts.config, overrides);
  let stop = false;
  const onSignal = () => {
    if (!stop) process.stderr.write('stopping after this step\n');
    stop = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const outcome = await runWorker({
      cfg,
      coordinator: opts.coordinator,
      outDir: opts.out,
      rank,
      runId: opts.runId,
      bindHost: opts.host,
      advertiseHost: opts.advertise,
      shouldStop: () => stop,
      log: (line) => process.stdout.write(`${line}\n`),
    });
    process.stdout.write(
      outcome.kind === 'finished'
        ? `rank ${outcome.rank}: finished\n`
        : `rank ${outcome.rank}: stopped after epoch ${outcome.epoch} step ${outcome.step}\n`,
    );
    return 0;
  } catch (err) {
    const e = err as Error;
    process.stderr.write(`bbn worker: ${e.name}: ${e.message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Registers `bbn worker` on the program. */
export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run one rank of a distributed training run (joins the coordinator at --coordinator)')
    .requiredOption('--coordinator <host:port>', 'coordinator address')
    .requiredOption('--config <file>', 'run config (YAML), the same file and overrides as the coordinator')
    .requiredOption('--out <dir>', 'run directory (rank 0 writes metrics, checkpoints and the summary)')
    .option('--rank <r>', 'rank to insist on (default: the coordinator assigns one)')
    .option('--run-id <id>', 'run id the coordinator serves (default: the config name)')
    .option('--host <host>', 'interface the ring peer server binds', '127.0.0.1')
    .option('--advertise <host>', 'host the other ranks dial (default: --host)')
    .argument('[overrides...]', 'KEY=VALUE config overrides, e.g. train.batchSize=256')
    .action(async (overrides: string[], opts: WorkerCommandOptions) => {
      const code = await runWorkerCommand(overrides, opts);
      // Exit now: a failed rank must not linger on a half-closed handle (its pod is replaced).
      process.exit(code);
    });
}
