/**
 * nats-server with JetStream, its store in a data dir. The server picks its own port (`-p -1`) and
 * writes it to a ports file, so there is no race between choosing a port and binding it.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type LocalServer, type LocalServerOptions, ServerNotReadyError, ServerVersionError } from './api.ts';
import { resolveServerBinary, SERVER_BINARIES } from './binaries.ts';
import { SupervisedChild } from './child.ts';
import {
  DEFAULT_HOST,
  DEFAULT_STOP_GRACE_MS,
  hostPort,
  localServerHandle,
  prepareDir,
  untilReadyOrExit,
} from './launch.ts';
import { compareVersions, waitForNats } from './ready.ts';

/**
 * Oldest nats-server we accept: 2.11 added per-message TTL (the `Nats-TTL` header, stream
 * `allow_msg_ttl`) that KV per-key TTL builds on. Debian's packaged 2.9.x lacks it.
 */
export const NATS_MIN_VERSION = '2.11.0';

const DEFAULT_READY_MS = 10_000;

/** The `nats-server` arguments: JetStream on, bound to `host`, store in `storeDir`, ports file in `portsDir`. */
export function natsServerArgs(
  host: string,
  port: number | undefined,
  storeDir: string,
  portsDir: string,
): string[] {
  return ['-js', '-a', host, '-p', String(port ?? -1), '-sd', storeDir, '--ports_file_dir', portsDir];
}

/** The client port from the server's ports file (`{"nats":["nats://127.0.0.1:4222"]}`), once written. */
async function readPortsFile(portsDir: string): Promise<number | undefined> {
  const file = (await readdir(portsDir)).find((f) => f.endsWith('.ports'));
  if (!file) return undefined;
  const parsed = JSON.parse(await readFile(join(portsDir, file), 'utf8')) as { nats?: string[] };
  const first = parsed.nats?.[0];
  return first ? Number(new URL(first).port) : undefined;
}

/** Polls for the ports file with the caller's deadline; the file appears once the listener is up. */
async function waitForPort(
  portsDir: string,
  deadline: number,
  readyMs: number,
  signal: AbortSignal,
  logTail: () => string,
): Promise<number> {
  for (;;) {
    if (signal.aborted) throw signal.reason;
    const port = await readPortsFile(portsDir).catch(() => undefined); // half-written file: try again
    if (port) return port;
    if (Date.now() >= deadline) {
      throw new ServerNotReadyError('nats', `ports file in ${portsDir}`, readyMs, logTail());
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Starts nats-server with JetStream on loopback and resolves once a client has connected and
 * reached the JetStream API. Rejects servers older than {@link NATS_MIN_VERSION}. On any failure
 * the process is killed and temp dirs removed; errors carry the server's log tail.
 */
export async function startNatsServer(opts: LocalServerOptions = {}): Promise<LocalServer> {
  const binaryPath = opts.binaryPath ?? resolveServerBinary('nats');
  const host = opts.host ?? DEFAULT_HOST;
  const stopGraceMs = opts.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
  const readyMs = opts.readyTimeoutMs ?? DEFAULT_READY_MS;
  const data = await prepareDir(opts.dataDir, 'bbn-nats-');
  const run = await prepareDir(undefined, 'bbn-nats-ports-');
  const child = new SupervisedChild(binaryPath, natsServerArgs(host, opts.port, data.dir, run.dir), {
    env: process.env,
    cleanupDirs: [data, run].filter((d) => d.owned).map((d) => d.dir),
  });
  const logTail = (): string => child.logTail();
  try {
    const deadline = Date.now() + readyMs;
    const { port, version } = await untilReadyOrExit('nats', child, async (signal) => {
      const p = await waitForPort(run.dir, deadline, readyMs, signal, logTail);
      const info = await waitForNats(`nats://${hostPort(host, p)}`, {
        timeoutMs: Math.max(1, deadline - Date.now()),
        signal,
        logTail,
      });
      return { port: p, version: info.version };
    });
    if (compareVersions(version, NATS_MIN_VERSION) < 0) {
      throw new ServerVersionError(
        'nats',
        binaryPath,
        version,
        NATS_MIN_VERSION,
        SERVER_BINARIES.nats.installHint,
      );
    }
    const address = `nats://${hostPort(host, port)}`;
    return localServerHandle(
      { name: 'nats', address, host, port, dataDir: data.dir, binaryPath },
      child,
      [data, run],
      stopGraceMs,
    );
  } catch (err) {
    await child.stop(stopGraceMs);
    await data.release();
    await run.release();
    throw err;
  }
}
