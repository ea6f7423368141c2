/**
 * The Temporal dev server (`temporal server start-dev`) with SQLite persistence: workflows started
 * before a stop are still there after a start on the same data dir.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type LocalServer, ServerExitedError, type TemporalDevServerOptions } from './api.ts';
import { resolveServerBinary } from './binaries.ts';
import { SupervisedChild } from './child.ts';
import {
  DEFAULT_HOST,
  DEFAULT_STOP_GRACE_MS,
  envWithout,
  freePort,
  hostPort,
  localServerHandle,
  prepareDir,
  untilReadyOrExit,
} from './launch.ts';
import { waitForTemporal } from './ready.ts';

/** The SQLite file inside the data dir; one name so a restart finds the same state. */
export const TEMPORAL_DB_FILENAME = 'temporal.sqlite';

/**
 * The pid of the server using a data dir. A server of a process that was SIGKILLed is stopped by
 * its watchdog within the stop grace; a new one on the same SQLite file must wait for that, or the
 * two race on the file (seen: "UNIQUE constraint failed: namespaces.name").
 */
export const TEMPORAL_PID_FILENAME = 'server.pid';

/** Whether `pid` is a live `temporal` process (a reused pid of another program does not count). */
function isTemporalProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('temporal');
  } catch {
    return true; // no /proc: alive is all we know
  }
}

/** Waits until the server recorded in `dir` (if any) has exited; throws if it outlives `timeoutMs`. */
async function untilPreviousServerGone(dir: string, timeoutMs: number): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dir, TEMPORAL_PID_FILENAME), 'utf8'));
  } catch {
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (Number.isInteger(pid) && pid > 0 && isTemporalProcess(pid)) {
    if (Date.now() > deadline) {
      throw new Error(
        `the Temporal state in ${dir} is still used by a server (pid ${pid}); stop that process first`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Attempts when a port we picked was taken between picking and binding. */
const PORT_ATTEMPTS = 3;

/** The `temporal` arguments for a headless dev server on `host:port` persisting to `dbFile`. */
export function temporalDevServerArgs(
  host: string,
  port: number,
  dbFile: string,
  namespace: string,
): string[] {
  // HTTP, metrics and internal service ports default to random free ones: only the frontend is fixed.
  const args = [
    'server',
    'start-dev',
    '--headless',
    '--ip',
    host,
    '--port',
    String(port),
    '--db-filename',
    dbFile,
  ];
  if (namespace !== 'default') args.push('--namespace', namespace);
  return args;
}

/**
 * Starts a Temporal dev server on loopback and resolves once a gRPC client can describe its
 * namespace. Throws {@link ServerExitedError} or `ServerNotReadyError` (both with the server's
 * log tail) after killing the process; never leaves it running on failure.
 */
export async function startTemporalDevServer(opts: TemporalDevServerOptions = {}): Promise<LocalServer> {
  const binaryPath = opts.binaryPath ?? resolveServerBinary('temporal');
  const host = opts.host ?? DEFAULT_HOST;
  const namespace = opts.namespace ?? 'default';
  const stopGraceMs = opts.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
  const data = await prepareDir(opts.dataDir, 'bbn-temporal-');
  const pidFile = join(data.dir, TEMPORAL_PID_FILENAME);
  try {
    await untilPreviousServerGone(data.dir, stopGraceMs + 2_000);
    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? (await freePort(host));
      const address = hostPort(host, port);
      const args = temporalDevServerArgs(host, port, join(data.dir, TEMPORAL_DB_FILENAME), namespace);
      // TEMPORAL_* variables configure the CLI's client side (address, TLS, profile); keep them out.
      const child = new SupervisedChild(binaryPath, args, {
        env: envWithout('TEMPORAL_'),
        cleanupDirs: data.owned ? [data.dir] : [],
      });
      try {
        await untilReadyOrExit('temporal', child, (signal) =>
          waitForTemporal(address, {
            namespace,
            timeoutMs: opts.readyTimeoutMs,
            signal,
            logTail: () => child.logTail(),
          }),
        );
        writeFileSync(pidFile, String(child.pid));
        const handle = localServerHandle(
          { name: 'temporal', address, host, port, dataDir: data.dir, binaryPath },
          child,
          [data],
          stopGraceMs,
        );
        return {
          ...handle,
          stop: async () => {
            await handle.stop();
            rmSync(pidFile, { force: true });
          },
        };
      } catch (err) {
        await child.stop(stopGraceMs);
        const portTaken = err instanceof ServerExitedError && /address already in use/i.test(err.logTail);
        if (!(portTaken && opts.port === undefined && attempt < PORT_ATTEMPTS)) throw err;
      }
    }
  } catch (err) {
    await data.release();
    throw err;
  }
}
