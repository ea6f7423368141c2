/**
 * Both servers at once, for the CLI's embedded local default: one data dir holding `temporal/`
 * and `nats/`, so a later start on the same dir sees the same workflows and streams.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalServer } from './api.ts';
import { startNatsServer } from './nats.ts';
import { startTemporalDevServer } from './temporal.ts';

/** Options for {@link startDevServers}. */
export interface DevServersOptions {
  /** Parent of `temporal/` and `nats/`; kept on stop. Default: a temp dir per server, removed on stop. */
  dataDir?: string;
  temporalBinary?: string;
  natsBinary?: string;
  readyTimeoutMs?: number;
}

/** The two running servers; `stop()` ends both. */
export interface DevServers {
  readonly temporal: LocalServer;
  readonly nats: LocalServer;
  stop(): Promise<void>;
}

/**
 * Starts the Temporal dev server and nats-server side by side. If either fails, the other is
 * stopped before the first error is rethrown, so nothing is left running.
 */
export async function startDevServers(opts: DevServersOptions = {}): Promise<DevServers> {
  const dirs = opts.dataDir
    ? { temporal: join(opts.dataDir, 'temporal'), nats: join(opts.dataDir, 'nats') }
    : {};
  if (dirs.temporal && dirs.nats) {
    await mkdir(dirs.temporal, { recursive: true });
    await mkdir(dirs.nats, { recursive: true });
  }
  const [t, n] = await Promise.allSettled([
    startTemporalDevServer({
      binaryPath: opts.temporalBinary,
      dataDir: dirs.temporal,
      readyTimeoutMs: opts.readyTimeoutMs,
    }),
    startNatsServer({ binaryPath: opts.natsBinary, dataDir: dirs.nats, readyTimeoutMs: opts.readyTimeoutMs }),
  ]);
  if (t.status === 'rejected' || n.status === 'rejected') {
    if (t.status === 'fulfilled') await t.value.stop();
    if (n.status === 'fulfilled') await n.value.stop();
    throw t.status === 'rejected' ? t.reason : (n as PromiseRejectedResult).reason;
  }
  const temporal = t.value;
  const nats = n.value;
  return {
    temporal,
    nats,
    stop: async () => {
      await Promise.all([temporal.stop(), nats.stop()]);
    },
  };
}
