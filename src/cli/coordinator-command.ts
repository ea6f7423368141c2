/**
 * `bbn coordinator --config FILE [--port P] [--host H] [--workers W] [--run-id ID] [KEY=VALUE …]`
 * serves one run's coordinator (membership, epoch plans, shards, checksums) until SIGINT/SIGTERM.
 * It prints one line `coordinator listening on HOST:PORT` on stdout once it accepts calls (and
 * `coordinator metrics at URL` with `--metrics-port`). With `--nats` (or `NATS_URL`) it mirrors
 * the α/lr broadcast, membership (joins, leaves, failures) and every rank's heartbeat on NATS.
 */
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import type { CoordinatorServer } from '../coordinator/server.ts';
import { ConfigError } from '../core/config.ts';
import type { Telemetry } from '../metrics/telemetry.ts';
import { loadRunConfig } from './config-file.ts';
import {
  addTelemetryOptions,
  coordinatorTelemetry,
  startCliTelemetry,
  type TelemetryFlags,
} from './telemetry-options.ts';

/** Options of `bbn coordinator`. */
export interface CoordinatorCommandOptions extends TelemetryFlags {
  readonly config: string;
  readonly host: string;
  readonly port: string;
  readonly workers?: string;
  readonly runId?: string;
}

function intOption(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new ConfigError(`--${name} (${value}) must be an integer >= ${min}`);
  return n;
}

/** A started coordinator with its telemetry. */
export interface RunningCoordinator {
  /** "host:port" workers dial. */
  readonly address: string;
  /** Prometheus `/metrics` URL, or null without `--metrics-port`. */
  readonly metricsUrl: string | null;
  readonly server: CoordinatorServer;
  readonly telemetry: Telemetry;
  /** Stops serving and flushes the telemetry (bounded). Idempotent. */
  close(): Promise<void>;
}

/** Starts the coordinator and its telemetry; resolves once it accepts calls. */
export async function startCoordinator(
  overrides: readonly string[],
  opts: CoordinatorCommandOptions,
): Promise<RunningCoordinator> {
  const extra =
    opts.workers === undefined ? [] : [`distributed.workers=${intOption('workers', opts.workers, 1)}`];
  const cfg = loadRunConfig(opts.config, [...overrides, ...extra]);
  const port = intOption('port', opts.port, 0);
  const runId = opts.runId ?? cfg.name;
  // Imported on use: gRPC and the data readers are not for `bbn --help`.
  const [{ CoordinatorServer }, { loadData }, { log }] = await Promise.all([
    import('../coordinator/server.ts'),
    import('../data/load.ts'),
    import('./log.ts'),
  ]);
  const data = await loadData(cfg.dataset);
  const telemetry = await startCliTelemetry(opts, { runId, cfg, role: 'coordinator' });
  const glue = coordinatorTelemetry(telemetry, (a) => {
    if (a.kind === 'declaredDead') log.warn({ failure: a.failure }, `rank ${a.failure.rank} declared dead`);
    if (a.kind === 'formed') log.info({ generation: a.generation }, `generation ${a.generation} formed`);
    if (a.kind === 'rendezvousFailed') log.warn(a.error.message);
  });
  const server = new CoordinatorServer(
    { runId, cfg, labels: data.train.labels, numClasses: data.train.numClasses },
    // The coordinator never reads a clock itself; a monotonic one is injected here.
    { clock: { now: () => performance.now() }, ...glue.options },
  );
  let address: string;
  try {
    address = await server.start({ host: opts.host, port });
  } catch (err) {
    await telemetry.close();
    throw err;
  }
  telemetry.runStatus('starting');
  const detach = glue.attach(server);
  let closing: Promise<void> | undefined;
  return {
    address,
    metricsUrl: telemetry.metricsUrl,
    server,
    telemetry,
    close: () => {
      closing ??= (async () => {
        detach();
        await server.close();
        await telemetry.close();
      })();
      return closing;
    },
  };
}

/** Starts the coordinator and resolves once it was stopped by a signal and closed. */
export async function runCoordinator(
  overrides: readonly string[],
  opts: CoordinatorCommandOptions,
): Promise<void> {
  const c = await startCoordinator(overrides, opts);
  process.stdout.write(`coordinator listening on ${c.address}\n`);
  if (c.metricsUrl) process.stdout.write(`coordinator metrics at ${c.metricsUrl}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await c.close();
}

/** Registers `bbn coordinator` on the program. */
export function registerCoordinatorCommand(program: Command): void {
  const cmd = program
    .command('coordinator')
    .description(
      'serve the coordinator of one run: rendezvous, heartbeats, epoch plans (alpha, lr) and shards',
    )
    .requiredOption('--config <file>', 'run config (YAML)')
    .option('--host <host>', 'interface to bind', '127.0.0.1')
    .option('--port <port>', 'port to bind (0 picks a free one)', '0')
    .option('--workers <n>', 'world size (overrides distributed.workers)')
    .option('--run-id <id>', 'training run id workers must send (default: the config name)')
    .argument('[overrides...]', 'KEY=VALUE config overrides, e.g. train.batchSize=256');
  addTelemetryOptions(cmd).action(async (overrides: string[], opts: CoordinatorCommandOptions) => {
    await runCoordinator(overrides, opts);
  });
}
