/**
 * A server child process that cannot outlive us: its output is kept as a bounded tail for error
 * messages, a process 'exit' hook kills it, and a tiny watchdog kills it when this process dies
 * without running hooks (SIGKILL, an unhandled signal, the terminal's SIGHUP).
 *
 * The server runs in a process group of its own: Ctrl-C in a terminal signals the terminal's
 * foreground group, and a `bbn train` that is stopping its run cleanly (a final checkpoint through
 * the workflow) needs its server alive until then. Whoever started it stops it (`stop`, the exit
 * hook, the watchdog); the terminal does not.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { Socket } from 'node:net';

/** How the process ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Characters of output kept for error messages; enough for the last few dozen log lines. */
const LOG_TAIL_CHARS = 16 * 1024;

/**
 * The watchdog blocks on a pipe that only this process holds. When we die for any reason the
 * kernel closes it, `read` returns, the server gets SIGTERM (SIGKILL after up to 5 s), and the
 * temp dirs we owned (arguments after the pid) are removed, since no exit hook ran to do it.
 */
const WATCHDOG_SCRIPT = [
  'read -r _; pid="$1"; shift',
  // A zombie counts as gone: with us dead, reaping it is init's job, and some container inits never do.
  'alive() { kill -0 "$pid" 2>/dev/null || return 1; case "$(cat /proc/$pid/stat 2>/dev/null)" in *") Z "*) return 1;; esac; }',
  'kill -TERM "$pid" 2>/dev/null; i=0',
  'while alive && [ "$i" -lt 5 ]; do sleep 1; i=$((i+1)); done',
  'alive && kill -KILL "$pid" 2>/dev/null',
  '[ "$#" -gt 0 ] && rm -rf -- "$@"',
].join('\n');

/**
 * Starts the watchdog of `pid` (see WATCHDOG_SCRIPT): it ends `pid` (and removes `cleanupDirs`)
 * when this process dies. It runs in its own process group too, so Ctrl-C does not end the
 * watch; kill it (SIGKILL) once `pid` has exited, since a reused pid must not be signalled.
 */
export function spawnWatchdog(pid: number, cleanupDirs: readonly string[] = []): ChildProcess {
  const watchdog = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, 'bbn-watchdog', String(pid), ...cleanupDirs], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  watchdog.on('error', () => {}); // no /bin/sh: the exit hook still covers normal exits
  watchdog.unref();
  (watchdog.stdin as Socket | null)?.unref();
  return watchdog;
}

/** How to run a supervised server. */
export interface SupervisedSpawnOptions {
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Temp dirs to remove should we die without cleaning up (never a user's data dir). */
  cleanupDirs?: readonly string[];
}

/** Every child still running and every temp dir still owned; the exit hook ends/removes them. */
const liveChildren = new Set<SupervisedChild>();
const ownedDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL and rmSync are.
  process.on('exit', () => {
    for (const child of liveChildren) child.killNow();
    for (const dir of ownedDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** Remember a temp dir to remove at process exit if `releaseOwnedDir` is never called. */
export function trackOwnedDir(dir: string): void {
  installExitHook();
  ownedDirs.add(dir);
}

/** The dir was removed (or handed over); the exit hook need not touch it. */
export function releaseOwnedDir(dir: string): void {
  ownedDirs.delete(dir);
}

/** A started server process under supervision. */
export class SupervisedChild {
  readonly pid: number;
  /** Resolves when the process has exited, however that happened. */
  readonly exited: Promise<ChildExit>;
  /** Set once `exited` resolved; lets sync code ask without awaiting. */
  private exitInfo: ChildExit | undefined;
  /** Last LOG_TAIL_CHARS of stdout+stderr, interleaved in arrival order. */
  private tail = '';
  private readonly proc: ChildProcess;
  /** Undefined once the server exited: it must not outlive the server (its pid could be reused). */
  private watchdog: ChildProcess | undefined;

  constructor(binary: string, args: readonly string[], opts: SupervisedSpawnOptions) {
    installExitHook();
    // A process group of its own: the terminal's Ctrl-C is for us to handle (see the module doc).
    this.proc = spawn(binary, args, {
      env: opts.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let resolveExit: (exit: ChildExit) => void = () => {};
    this.exited = new Promise<ChildExit>((res) => {
      resolveExit = res;
    });
    const markExited = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (this.exitInfo) return;
      this.exitInfo = { code, signal };
      liveChildren.delete(this);
      this.stopWatchdog();
      resolveExit(this.exitInfo);
    };
    this.proc.once('exit', markExited);
    // A failed spawn (ENOENT, EACCES) emits 'error' and no 'exit'; a failed kill also emits 'error'.
    this.proc.on('error', (err) => {
      this.append(`[${binary}: ${err.message}]\n`);
      if (this.proc.pid === undefined) markExited(null, null);
    });
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      stream?.setEncoding('utf8');
      // Always drain: a full pipe would block the server.
      stream?.on('data', (chunk: string) => this.append(chunk));
    }
    this.pid = this.proc.pid ?? -1;
    if (this.pid > 0) {
      liveChildren.add(this);
      this.watchdog = spawnWatchdog(this.pid, opts.cleanupDirs);
    }
  }

  private append(chunk: string): void {
    this.tail += chunk;
    if (this.tail.length > LOG_TAIL_CHARS) this.tail = this.tail.slice(-LOG_TAIL_CHARS);
  }

  private stopWatchdog(): void {
    this.watchdog?.kill('SIGKILL');
    this.watchdog = undefined;
  }

  /** The process has exited (its exit event was seen). */
  hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  /** The last lines the process wrote, trimmed to whole lines. */
  logTail(maxLines = 40): string {
    return this.tail
      .split('\n')
      .slice(-maxLines - 1)
      .join('\n')
      .trimEnd();
  }

  /** Synchronous SIGKILL for the process-exit hook. */
  killNow(): void {
    this.stopWatchdog();
    if (!this.hasExited()) this.proc.kill('SIGKILL');
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves when the process has exited. Idempotent. */
  async stop(graceMs: number): Promise<ChildExit> {
    if (this.exitInfo) return this.exitInfo;
    this.proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((res) => {
      timer = setTimeout(() => {
        this.proc.kill('SIGKILL');
        res();
      }, graceMs);
    });
    try {
      await Promise.race([this.exited, killed]);
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
