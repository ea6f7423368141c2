/**
 * `bbn train --config FILE [KEY=VALUE …] --out DIR` trains and evaluates one run as a durable
 * Temporal workflow (durable-train.ts; `--workers W` for W local rank processes);
 * `bbn train --resume DIR` continues it. `--no-temporal` trains in this process (or with the plain
 * launcher), where Ctrl-C stops after the current step with a checkpoint.
 */

import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, type RunConfig } from '../core/config.ts';
import type { TrainingResult } from '../orchestration/api.ts';
import type { RunOutcome } from '../worker/run.ts';
import { claimRunDir } from '../worker/run-claim.ts';
import { runPaths } from '../worker/run-dir.ts';
import { loadRunConfig } from './config-file.ts';
import { portFlag } from './flags.ts';
import { formatShotTable, readRun } from './report-command.ts';
import { readRunDirStatus } from './run-status.ts';
import { addTelemetryOptions } from './telemetry-options.ts';

/** Runs one training in this process, printing progress; resolves with how it ended. */
export async function trainLocally(cfg: RunConfig, outDir: string, resume: boolean): Promise<RunOutcome> {
  // Imported here (as are the other modes' modules below): tfjs, Temporal and gRPC cost seconds
  // of start-up that the commands which do not train should not pay.
  const [{ selectBackend }, { runTraining }, { log }, { createProgress, formatEpochLine }] =
    await Promise.all([
      import('../model/backend.ts'),
      import('../worker/run.ts'),
      import('./log.ts'),
      import('./progress.ts'),
    ]);
  const backend = await selectBackend(cfg.compute.backend, { threads: cfg.compute.threads });
  log.info({ backend: backend.name, tried: backend.tried }, backend.reason);
  process.stderr.write(`backend: ${backend.name} (${backend.reason})\n`);
  const progress = createProgress();
  let stopRequested = false;
  const onSigint = () => {
    if (stopRequested) process.exit(130);
    stopRequested = true;
    process.stderr.write('\nstopping after this step with a checkpoint (Ctrl-C again to exit now)\n');
  };
  process.on('SIGINT', onSigint);
  try {
    return await runTraining(cfg, outDir, {
      resume,
      backend: backend.name,
      hooks: {
        onStart({ data, model, resumedFrom, startEpoch }) {
          const counts = data.trainCounts;
          process.stderr.write(
            `data: ${data.train.name} ${data.train.size} train / ${data.test.size} test images, ${counts.length} classes, ` +
              `imbalance ${Math.max(...counts)}:${Math.min(...counts)} (${data.profile})\n` +
              `model: ${cfg.method} ${model.signature.split('#')[0]}, ${model.numParams.toLocaleString('en-US')} parameters\n`,
          );
          if (resumedFrom) {
            for (const r of resumedFrom.rejected)
              process.stderr.write(`skipped bad checkpoint: ${r.reason}\n`);
            process.stderr.write(`resuming from ${resumedFrom.path} (epoch ${startEpoch})\n`);
          }
        },
        onStep(r, epochs) {
          progress.step({
            ...r,
            epochs,
            stepsPerSecond: 1 / Math.max(1e-9, r.computeSeconds + r.reduceSeconds),
          });
        },
        onEpoch(m, epochs) {
          progress.endEpoch(formatEpochLine(m, epochs));
        },
        shouldStop: () => stopRequested,
      },
    });
  } finally {
    progress.close();
    process.off('SIGINT', onSigint);
  }
}

/** Prints how a run ended: the final table, or how to resume. */
export function printOutcome(outcome: RunOutcome, outDir: string): void {
  if (outcome.kind === 'stopped') {
    process.stdout.write(
      `stopped at epoch ${outcome.epoch + 1} step ${outcome.step}; checkpoint ${outcome.checkpoint}\n` +
        `resume with: bbn train --resume ${outDir}\n`,
    );
    return;
  }
  const s = outcome.summary;
  process.stdout.write(`\n${formatShotTable([{ label: `${s.name} (${s.method})`, summary: s }])}\n`);
  const p = runPaths(outDir);
  process.stdout.write(`metrics: ${p.metrics}\nsummary: ${p.summary}\ncheckpoints: ${p.checkpoints}\n`);
}

/** Prints how a durable run ended: the final table, or how to resume. */
function printDurableOutcome(result: TrainingResult, outDir: string): void {
  if (result.state === 'cancelled') {
    process.stdout.write(
      `stopped; checkpoint ${result.checkpoint ?? '-'}\nresume with: bbn train --resume ${outDir}\n`,
    );
    return;
  }
  const p = runPaths(outDir);
  const s = readRun(outDir).summary;
  process.stdout.write(`\n${formatShotTable([{ label: `${s.name} (${s.method})`, summary: s }])}\n`);
  process.stdout.write(`metrics: ${p.metrics}\nsummary: ${p.summary}\ncheckpoints: ${p.checkpoints}\n`);
}

interface TrainFlags {
  config?: string;
  out?: string;
  resume?: string;
  workers?: string;
  runId?: string;
  temporal?: string | boolean;
  temporalNamespace: string;
  externalWorkers?: boolean;
  nats?: string;
  metricsPort?: string;
  metricsHost?: string;
  verbose?: boolean;
  force?: boolean;
  coordinatorHost: string;
  coordinatorPort?: string;
}

/** The most ranks one run may have (the ring's and the coordinator's tested range). */
export const MAX_WORKERS = 1024;

/** The most rank processes one machine starts: 4 per CPU (at least 8). */
export function localWorkerLimit(cpus = availableParallelism()): number {
  return Math.max(8, 4 * cpus);
}

/** `--workers N`: an integer in 1..MAX_WORKERS, and at most `localWorkerLimit()` when the ranks run here. */
export function parseWorkers(text: string, local: boolean): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new ConfigError(`--workers (${text}) must be an integer from 1 to ${MAX_WORKERS}`);
  }
  const limit = localWorkerLimit();
  if (local && n > limit) {
    throw new ConfigError(
      `--workers (${n}) is more rank processes than this machine runs (at most ${limit}: 4 per CPU); ` +
        'train more ranks on a cluster (--external-workers)',
    );
  }
  return n;
}

/** The run's config and directory from the flags (`--resume DIR` reads DIR's saved config). */
function resolveRun(overrides: string[], opts: TrainFlags): { cfg: RunConfig; outDir: string } {
  if (opts.resume) {
    const saved = runPaths(opts.resume).config;
    if (!existsSync(saved)) {
      throw new ConfigError(
        `--resume ${opts.resume}: no ${saved}; is this a run directory made by bbn train?`,
      );
    }
    return { cfg: loadRunConfig(opts.config ?? saved, overrides), outDir: opts.resume };
  }
  if (!opts.config) throw new ConfigError('bbn train needs --config FILE (or --resume DIR)');
  const cfg = loadRunConfig(opts.config, overrides);
  return { cfg, outDir: opts.out ?? `runs/${cfg.name}` };
}

/** Exit status of a run stopped by Ctrl-C (SIGINT), with a checkpoint: 128 + 2, as shells report it. */
export const EXIT_INTERRUPTED = 130;
/** Exit status of a run stopped from elsewhere (`bbn cancel`), with a checkpoint. */
export const EXIT_CANCELLED = 3;

/** Exit statuses, for `bbn train --help`. */
const EXIT_HELP = `
Exit status: 0 the run completed (or was already complete), 1 it failed,
2 a user error (config, data, flags), ${EXIT_INTERRUPTED} stopped by Ctrl-C, ${EXIT_CANCELLED} stopped by bbn cancel;
a stopped run keeps its checkpoint: continue it with bbn train --resume DIR.`;

/** `--resume` of a run that has trained every epoch `cfg` asks for: nothing to do. */
function alreadyComplete(cfg: RunConfig, outDir: string): boolean {
  const s = readRunDirStatus(outDir);
  return s.summary !== null && s.epoch >= cfg.train.epochs;
}

/** Errors that refuse the run's inputs (config, data, run directory, checkpoints, credentials, the given Temporal server), as opposed to a failure while it ran. */
function isRefusal(err: unknown): boolean {
  const name = (err as Error | undefined)?.name ?? '';
  return (
    err instanceof ConfigError ||
    [
      'DataError',
      'RunDirError',
      'CheckpointError',
      'ModelError',
      'CredentialsError',
      'TemporalUnreachableError',
    ].includes(name)
  );
}

/** Registers `bbn train`. */
export function registerTrainCommand(program: Command): void {
  const cmd = program
    .command('train')
    .description(
      'train and evaluate a run (BBN or a baseline) on this machine, as a durable Temporal workflow',
    )
    .option('-c, --config <file>', 'YAML run config (see configs/)')
    .option('-o, --out <dir>', 'run directory for config, metrics, checkpoints and summary')
    .option('--resume <dir>', 'continue the run in <dir> (re-attach to it if it is still running)')
    .option(
      '--force',
      'with --out: move an existing run in that directory aside (never deleted) and start over',
    )
    .option('--workers <n>', 'train with N local worker processes over the gRPC ring allreduce')
    .option('--run-id <id>', 'workflow run id (default: the run directory name)')
    .option(
      '--temporal <host:port>',
      'Temporal frontend (default: $BBN_TEMPORAL_ADDRESS, a server on localhost:7233, else an embedded dev server)',
    )
    .option('--no-temporal', 'train in this process without Temporal (one rank; not resumable after a crash)')
    .option('--temporal-namespace <ns>', 'Temporal namespace', 'default')
    .option(
      '--external-workers',
      'the ranks run elsewhere (cluster pods): host the workflow only, re-attach or continue the run, then keep serving until SIGTERM',
    )
    .option(
      '--coordinator-port <port>',
      "with --external-workers: port of the run's coordinator, which the ranks' heartbeats reach (default: any free one)",
    )
    .option('--coordinator-host <host>', "interface the run's coordinator binds", '127.0.0.1')
    .option('--verbose', "print the Temporal SDK's warnings (by default they go to DIR/temporal.log)")
    .argument('[overrides...]', 'KEY=VALUE config overrides, e.g. train.epochs=5 method=ce')
    .addHelpText('after', EXIT_HELP);
  addTelemetryOptions(cmd).action(async (overrides: string[], opts: TrainFlags) => {
    const workers = opts.workers === undefined ? 1 : parseWorkers(opts.workers, !opts.externalWorkers);
    if (opts.temporal === false && workers > 1) {
      throw new ConfigError(
        `--no-temporal trains in this process only; drop it to train with --workers ${workers} (a durable run)`,
      );
    }
    const coordinatorPort = portFlag('--coordinator-port', opts.coordinatorPort);
    const { cfg, outDir } = resolveRun(overrides, opts);
    // Data that cannot load (or cannot fill a batch) is refused before anything starts; a durable
    // run would otherwise first start a server and a workflow. Cluster ranks read their own data.
    if (opts.temporal !== false && !opts.externalWorkers) {
      const { checkRunData } = await import('../worker/run-inputs.ts');
      await checkRunData(cfg);
    }
    // Nothing is written into the run directory before it is claimed: locked, and not another run.
    const claim = claimRunDir(outDir, cfg, {
      resume: !!opts.resume,
      force: opts.force,
      lock: !opts.externalWorkers,
      continueExisting: opts.externalWorkers,
    });
    if (claim.movedAside)
      process.stderr.write(`moved the previous run in ${outDir} to ${claim.movedAside}\n`);
    try {
      // After the claim: a run in use, or a resume that would change its model, is refused first.
      if (opts.resume && !opts.externalWorkers && alreadyComplete(cfg, outDir)) {
        process.stdout.write(
          `run ${outDir} is already complete (${cfg.train.epochs}/${cfg.train.epochs} epochs); nothing to resume. ` +
            `See it with: bbn report ${outDir}\n`,
        );
        return;
      }
      await trainClaimed(cfg, outDir, opts, workers, coordinatorPort);
    } catch (err) {
      // A run refused before it trained leaves no stub behind (and a run moved aside comes back).
      if (isRefusal(err) && claim.discard() && claim.movedAside)
        process.stderr.write(`moved the previous run back to ${outDir}\n`);
      throw err;
    } finally {
      claim.release();
    }
  });
}

/** `bbn train` after the run directory was claimed. */
async function trainClaimed(
  cfg: RunConfig,
  outDir: string,
  opts: TrainFlags,
  workers: number,
  coordinatorPort: number | undefined,
): Promise<void> {
  if (opts.temporal !== false) {
    // The SDK's log lines go to the run's log file (this process and its rank processes).
    if (!opts.verbose) process.env.BBN_TEMPORAL_LOG ??= join(resolve(outDir), 'temporal.log');
    // Local rank processes inherit the run's token (generated unless configured); pods read theirs from the Secret.
    if (!opts.externalWorkers) (await import('../auth/run-token.ts')).ensureRunToken(process.env);
    const { trainDurably } = await import('./durable-train.ts');
    // Whether this process was interrupted (durable-train turns Ctrl-C into a cancel of the run).
    let interrupted = false;
    const onSigint = () => {
      interrupted = true;
    };
    process.on('SIGINT', onSigint);
    const result = await trainDurably({
      cfg,
      outDir,
      workers,
      resume: !!opts.resume,
      runId: opts.runId,
      temporal: typeof opts.temporal === 'string' ? opts.temporal : undefined,
      temporalNamespace: opts.temporalNamespace,
      externalRanks: opts.externalWorkers,
      coordinator: { host: opts.coordinatorHost, port: coordinatorPort },
      telemetry: { nats: opts.nats, metricsPort: opts.metricsPort, metricsHost: opts.metricsHost },
    }).finally(() => process.off('SIGINT', onSigint));
    printDurableOutcome(result, outDir);
    if (result.state === 'cancelled') process.exitCode = interrupted ? EXIT_INTERRUPTED : EXIT_CANCELLED;
    if (opts.externalWorkers) {
      // A Deployment's pod: exiting would only restart it; stay until the release goes.
      process.stdout.write('run ended; serving nothing more until SIGTERM\n');
      await new Promise<void>((done) => {
        const alive = setInterval(() => {}, 3_600_000); // signal listeners alone do not keep a process up
        const stop = () => {
          clearInterval(alive);
          done();
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    }
    return;
  }
  const outcome = await trainLocally(cfg, outDir, !!opts.resume);
  printOutcome(outcome, outDir);
  if (outcome.kind === 'stopped') process.exitCode = EXIT_INTERRUPTED;
}
