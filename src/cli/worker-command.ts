/**
 * `bbn worker --coordinator HOST:PORT --config FILE --out DIR [--rank R] [KEY=VALUE …]` runs one
 * rank of a distributed run. Ctrl-C / SIGTERM ask the whole world to stop after the current step
 * (rank 0 checkpoints). Exits 0 when the run finished or stopped in order, 1 when this rank
 * failed (the reason is the last line on stderr), so a supervisor can replace it.
 *
 * With `--nats URL` (or `NATS_URL`) the rank publishes its steps (and rank 0 the run's epochs,
 * checkpoints and status) to NATS, best effort; with `--metrics-port P` it serves Prometheus
 * `/metrics` and prints `rank R: metrics at URL` once listening.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../core/config.ts';
import type { Telemetry } from '../metrics/telemetry.ts';
import type { BackendPreference } from '../model/backend.ts';
import { loadRunConfig } from './config-file.ts';
import type { TemporalRankOptions } from './rank-command.ts';
import {
  addTelemetryOptions,
  checkpointUri,
  runEndOf,
  startCliTelemetry,
  type TelemetryFlags,
} from './telemetry-options.ts';

/** Options of `bbn worker`. */
export interface WorkerCommandOptions extends TelemetryFlags {
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
  const { runWorker } = await import('../worker/process/worker.ts'); // tfjs and gRPC: on use only
  const outDir = resolve(opts.out);
  const telemetry: Telemetry = await startCliTelemetry(opts, {
    runId: opts.runId ?? cfg.name,
    cfg,
    role: 'worker',
    rank,
    checkpointUri: (epoch, step) => checkpointUri(outDir, epoch, step),
  });
  if (telemetry.metricsUrl) process.stdout.write(`rank ${rank ?? '?'}: metrics at ${telemetry.metricsUrl}\n`);
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
      onStep: telemetry.onStep,
      onEpoch: telemetry.onEpoch,
    });
    if (outcome.kind === 'stopped' && outcome.rank === 0) {
      telemetry.checkpoint(outcome.epoch, checkpointUri(outDir, outcome.epoch, outcome.step));
    }
    await telemetry.close(runEndOf(outcome));
    process.stdout.write(
      outcome.kind === 'finished'
        ? `rank ${outcome.rank}: finished\n`
        : `rank ${outcome.rank}: stopped after epoch ${outcome.epoch} step ${outcome.step}\n`,
    );
    return 0;
  } catch (err) {
    const e = err as Error;
    await telemetry.close({ state: 'failed', reason: `${e.name}: ${e.message}` });
    process.stderr.write(`bbn worker: ${e.name}: ${e.message}\n`);
    return 1;
  } finally {
    await telemetry.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Registers `bbn worker` on the program. */
export function registerWorkerCommand(program: Command): void {
  const cmd = program
    .command('worker')
    .description(
      'run one rank of a training run: of a durable run (--temporal, serves its task queue) or under a coordinator (--coordinator)',
    )
    .option('--temporal <host:port>', 'Temporal frontend of a durable run (with --run-id and --rank)')
    .option('--temporal-namespace <ns>', 'Temporal namespace', 'default')
    .option('--workflows [bundle]', 'with --temporal: also host the workflow (from a prebuilt bundle file)')
    .option(
      '--backend <name>',
      'with --temporal: tfjs backend (auto, tensorflow, tensorflow-gpu, wasm, cpu)',
      'auto',
    )
    .option('--threads <n>', 'with --temporal: compute threads of the backend')
    .option('--peer-port <port>', 'with --temporal: port of the ring peer server (default: any free one)')
    .option(
      '--health-port <port>',
      'with --temporal: port of the health endpoint GET /healthz, served on --host (default: any free one; printed)',
    )
    .option('--coordinator <host:port>', 'coordinator address')
    .option('--config <file>', 'run config (YAML), the same file and overrides as the coordinator')
    .option('--out <dir>', 'run directory (rank 0 writes metrics, checkpoints and the summary)')
    .option('--rank <r>', 'rank to insist on (default: the coordinator assigns one)', process.env.BBN_RANK)
    .option('--run-id <id>', 'run id (default for --coordinator: the config name)')
    .option('--host <host>', 'interface the ring peer server binds', '127.0.0.1')
    .option('--advertise <host>', 'host the other ranks dial (default: --host)')
    .argument('[overrides...]', 'KEY=VALUE config overrides, e.g. train.batchSize=256');
  addTelemetryOptions(cmd).action(async (overrides: string[], opts: WorkerFlags) => {
    // Imported on use: the Temporal SDK costs a second of start-up a coordinator worker does not need.
    const code = opts.temporal
      ? await (await import('./rank-command.ts')).runTemporalRank(temporalRankOptions(opts))
      : await runWorkerCommand(overrides, coordinatorWorkerOptions(opts));
    // Exit now: a failed rank must not linger on a half-closed handle (its pod is replaced).
    process.exit(code);
  });
}

/** The flags of `bbn worker` in either mode. */
interface WorkerFlags extends Partial<WorkerCommandOptions> {
  readonly host: string;
  readonly temporal?: string;
  readonly temporalNamespace: string;
  readonly workflows?: string | boolean;
  readonly backend: string;
  readonly threads?: string;
  readonly peerPort?: string;
  readonly healthPort?: string;
}

/** A `--*-port` flag's value (undefined when absent). */
function portFlag(flag: string, value: string | undefined): number | undefined {
  const port = value === undefined ? undefined : Number(value);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65_535)) {
    throw new ConfigError(`${flag} (${value}) must be an integer in 0..65535`);
  }
  return port;
}

function temporalRankOptions(f: WorkerFlags): TemporalRankOptions {
  const threads = f.threads === undefined ? undefined : Number(f.threads);
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) {
    throw new ConfigError(`--threads (${f.threads}) must be an integer >= 1`);
  }
  return {
    temporal: f.temporal ?? '',
    peerPort: portFlag('--peer-port', f.peerPort),
    healthPort: portFlag('--health-port', f.healthPort),
    temporalNamespace: f.temporalNamespace,
    runId: f.runId ?? '',
    rank: f.rank === undefined ? Number.NaN : Number(f.rank),
    backend: f.backend as BackendPreference,
    threads,
    host: f.host,
    advertise: f.advertise,
    workflows: f.workflows,
    telemetry: { nats: f.nats, metricsPort: f.metricsPort, metricsHost: f.metricsHost },
  };
}

function coordinatorWorkerOptions(f: WorkerFlags): WorkerCommandOptions {
  for (const [flag, value] of [
    ['--coordinator', f.coordinator],
    ['--config', f.config],
    ['--out', f.out],
  ] as const) {
    if (!value) throw new ConfigError(`bbn worker needs ${flag} (or --temporal for a durable run)`);
  }
  return f as WorkerCommandOptions;
}
