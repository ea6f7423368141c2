/**
 * The telemetry flags every long-running `bbn` command shares (`--nats`, `--metrics-port`,
 * `--metrics-host`, with environment fallbacks for pods), and the small glue from the worker
 * layer's results (checkpoint paths, run outcomes) to the telemetry of src/metrics/telemetry.ts.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { ConfigError } from '../core/config.ts';
import { RunIdError } from '../events/api.ts';
import type { Telemetry, TelemetryOptions } from '../metrics/telemetry.ts';
import { checkpointFileName } from '../worker/checkpoint.ts';
import { runPaths } from '../worker/run-dir.ts';

/** Parsed telemetry flags (commander's camel-cased option names). */
export interface TelemetryFlags {
  readonly nats?: string;
  readonly metricsPort?: string;
  readonly metricsHost?: string;
}

/** Adds `--nats`, `--metrics-port` and `--metrics-host` to `cmd`. */
export function addTelemetryOptions(cmd: Command): Command {
  return cmd
    .option(
      '--nats <url>',
      'NATS server for live events and run status (default: $NATS_URL, then $BBN_NATS_URL)',
    )
    .option(
      '--metrics-port <port>',
      'serve Prometheus /metrics on this port, 0 picks one (default: $BBN_METRICS_PORT)',
    )
    .option('--metrics-host <host>', 'interface of /metrics (default: $BBN_METRICS_HOST, then 127.0.0.1)');
}

/** The NATS URL, metrics port and host the flags and then the environment give; absent when neither does. */
export function resolveTelemetryFlags(
  flags: TelemetryFlags,
  env: NodeJS.ProcessEnv = process.env,
): { natsUrl?: string; metricsPort?: number; metricsHost?: string } {
  const natsUrl = flags.nats ?? (env.NATS_URL || env.BBN_NATS_URL || undefined);
  const portText = flags.metricsPort ?? (env.BBN_METRICS_PORT || undefined);
  let metricsPort: number | undefined;
  if (portText !== undefined) {
    metricsPort = Number(portText);
    if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65_535) {
      throw new ConfigError(`--metrics-port (${portText}) must be an integer in 0..65535`);
    }
  }
  const metricsHost = flags.metricsHost ?? (env.BBN_METRICS_HOST || undefined);
  return { natsUrl, metricsPort, metricsHost };
}

/** Starts telemetry from the flags (and environment) plus what the command knows. */
export async function startCliTelemetry(
  flags: TelemetryFlags,
  base: Omit<TelemetryOptions, 'natsUrl' | 'metricsPort' | 'metricsHost'>,
): Promise<Telemetry> {
  // Imported here: NATS and prom-client load only in commands that publish.
  const { startTelemetry } = await import('../metrics/telemetry.ts');
  try {
    return await startTelemetry({ ...base, ...resolveTelemetryFlags(flags) });
  } catch (err) {
    if (err instanceof RunIdError) {
      throw new ConfigError(`${err.message}; with --nats, pass --run-id (the config name is the default)`);
    }
    throw err;
  }
}

/** `file://` URL of the checkpoint a run in `outDir` writes after `epoch` epochs and `step` steps. */
export function checkpointUri(outDir: string, epoch: number, step = 0): string {
  return pathToFileURL(join(runPaths(outDir).checkpoints, checkpointFileName(epoch, step))).href;
}
