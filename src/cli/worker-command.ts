/**
 * `bbn worker --temporal HOST:PORT --run-id RUN --rank R [--coordinator HOST:PORT]`: one rank of a
 * durable run (rank-command.ts). Exits 0 when stopped in order, 1 when the rank failed (the reason
 * is the last line on stderr), so a supervisor (or the pod's restart policy) replaces it.
 */
import type { Command } from 'commander';
import { ConfigError } from '../core/config.ts';
import type { BackendPreference } from '../model/backend.ts';
import { portFlag } from './flags.ts';
import type { TemporalRankOptions } from './rank-command.ts';
import { addTelemetryOptions, type TelemetryFlags } from './telemetry-options.ts';

/** The flags of `bbn worker`. */
interface WorkerFlags extends TelemetryFlags {
  readonly temporal?: string;
  readonly temporalNamespace: string;
  readonly coordinator?: string;
  readonly workflows?: string | boolean;
  readonly backend: string;
  readonly threads?: string;
  readonly peerPort?: string;
  readonly healthPort?: string;
  readonly rank?: string;
  readonly runId?: string;
  readonly host: string;
  readonly advertise?: string;
}

/** Registers `bbn worker` on the program. */
export function registerWorkerCommand(program: Command): void {
  const cmd = program
    .command('worker')
    .description(
      'run one rank of a durable training run: serve its Temporal task queue, heartbeat to its coordinator',
    )
    .option('--temporal <host:port>', 'Temporal frontend of the run (required)')
    .option('--temporal-namespace <ns>', 'Temporal namespace', 'default')
    .option('--run-id <id>', 'run id (required)')
    .option('--rank <r>', 'this rank (required; default $BBN_RANK)', process.env.BBN_RANK)
    .option(
      '--coordinator <host:port>',
      "the run's coordinator, which this rank heartbeats to every second (required when the run has more than one rank)",
    )
    .option('--workflows [bundle]', 'also host the workflow (from a prebuilt bundle file)')
    .option('--backend <name>', 'tfjs backend (auto, tensorflow, tensorflow-gpu, wasm, cpu)', 'auto')
    .option('--threads <n>', 'compute threads of the backend')
    .option('--peer-port <port>', 'port of the ring peer server (default: any free one)')
    .option(
      '--health-port <port>',
      'port of the health endpoint GET /healthz, served on --host (default: any free one; printed)',
    )
    .option('--host <host>', 'interface the ring peer server and health endpoint bind', '127.0.0.1')
    .option('--advertise <host>', 'host the other ranks dial (default: --host)');
  addTelemetryOptions(cmd).action(async (opts: WorkerFlags) => {
    const o = rankOptions(opts);
    const code = await (await import('./rank-command.ts')).runTemporalRank(o);
    // Exit now: a failed rank must not linger on a half-closed handle (its pod is replaced).
    process.exit(code);
  });
}

function rankOptions(f: WorkerFlags): TemporalRankOptions {
  if (!f.temporal)
    throw new ConfigError("bbn worker needs --temporal HOST:PORT (the run's Temporal frontend)");
  const threads = f.threads === undefined ? undefined : Number(f.threads);
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 1)) {
    throw new ConfigError(`--threads (${f.threads}) must be an integer >= 1`);
  }
  return {
    temporal: f.temporal,
    coordinator: f.coordinator,
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
