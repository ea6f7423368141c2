/**
 * What both servers share between spawn and ready: free ports, owned temp dirs, the readiness wait
 * that gives up as soon as the process dies, and the {@link LocalServer} handle.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalServer, ServerExitedError, type ServerName } from './api.ts';
import { releaseOwnedDir, type SupervisedChild, trackOwnedDir } from './child.ts';

/** Defaults shared by both servers. */
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_STOP_GRACE_MS = 5_000;

/** A port nobody listens on right now (bind to 0, read, close). Racy by nature: callers retry on EADDRINUSE. */
export function freePort(host: string = DEFAULT_HOST): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error(`no port from ${host}:0`))));
    });
  });
}

/** True when nothing listens on `host:port`: we can bind it ourselves (racy too, like {@link freePort}). */
export function portIsFree(port: number, host: string = DEFAULT_HOST): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** `host:port`, bracketing IPv6 literals. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A directory that is removed on `release()` only when we created it. */
export interface DataDir {
  readonly dir: string;
  readonly owned: boolean;
  release(): Promise<void>;
}

/** The given dir as is, or a fresh temp dir (tracked so the exit hook removes it if nothing else does). */
export async function prepareDir(given: string | undefined, prefix: string): Promise<DataDir> {
  if (given !== undefined) return { dir: given, owned: false, release: async () => {} };
  const dir = await mkdtemp(join(tmpdir(), prefix));
  trackOwnedDir(dir);
  return {
    dir,
    owned: true,
    release: async () => {
      await rm(dir, { recursive: true, force: true });
      releaseOwnedDir(dir);
    },
  };
}

/**
 * Runs `wait` with a signal that aborts (with a {@link ServerExitedError} carrying the log tail)
 * the moment the child exits, so a crashing server fails fast instead of at the deadline.
 */
export async function untilReadyOrExit<T>(
  server: ServerName,
  child: SupervisedChild,
  wait: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const ac = new AbortController();
  void child.exited.then((e) => ac.abort(new ServerExitedError(server, e.code, e.signal, child.logTail())));
  return wait(ac.signal);
}

/** Fields of a started server that the handle reports. */
export interface LocalServerFields {
  readonly name: ServerName;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly binaryPath: string;
}

/** The handle callers get: stop ends the process, then removes the dirs this module created. */
export function localServerHandle(
  fields: LocalServerFields,
  child: SupervisedChild,
  ownedDirs: readonly DataDir[],
  stopGraceMs: number,
): LocalServer {
  let stopping: Promise<void> | undefined;
  return {
    ...fields,
    pid: child.pid,
    logTail: () => child.logTail(),
    stop: () => {
      stopping ??= (async () => {
        await child.stop(stopGraceMs);
        for (const d of ownedDirs) await d.release();
      })();
      return stopping;
    },
  };
}

/** Env for a child with some variables removed (e.g. TEMPORAL_ADDRESS must not configure the dev server). */
export function envWithout(prefix: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith(prefix)));
}
