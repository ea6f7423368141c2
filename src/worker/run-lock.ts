/**
 * One process trains into a run directory at a time: `DIR/.bbn.lock` holds the pid and host of
 * the process that owns the run, created with O_EXCL so that of two processes starting at once
 * exactly one gets it. A lock left by a process that died (same host, pid no longer alive) is
 * stale and taken over; a lock from another host cannot be checked from here and is refused with
 * the way to clear it by hand.
 *
 * Takeover of a stale lock renames our own lock file over it and then reads it back: of two
 * processes that found the same stale lock at the same moment, the one whose pid is not in the
 * file afterwards gives way.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fsReason, RunDirError } from './run-dir-error.ts';

/** Contents of the lock file. */
export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
}

/** A held lock; `release()` removes it (only if it is still ours) and is idempotent. */
export interface RunLock {
  readonly path: string;
  release(): void;
}

/** Path of a run directory's lock file. */
export function lockPath(dir: string): string {
  return join(dir, '.bbn.lock');
}

/** Whether process `pid` exists on this host (EPERM: it exists, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    return Number.isInteger(h?.pid) && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** The live holder of `dir`'s lock, or undefined when it is free or stale. */
export function lockHolder(dir: string): LockHolder | undefined {
  const h = readHolder(lockPath(dir));
  if (!h) return undefined;
  if (h.host === hostname() && !pidAlive(h.pid)) return undefined;
  return h;
}

function inUse(dir: string, h: LockHolder): RunDirError {
  const where = h.host === hostname() ? '' : ` on host ${h.host}`;
  const hint =
    h.host === hostname()
      ? 'wait for it to end or stop it'
      : `if that host no longer runs it, delete ${lockPath(dir)}`;
  return new RunDirError(
    `run directory ${dir} is in use by process ${h.pid}${where} (since ${h.since}); ${hint}`,
  );
}

/** Takes `dir`'s lock for this process; a `RunDirError` names the holder when another has it. */
export function acquireRunLock(dir: string): RunLock {
  const path = lockPath(dir);
  const me: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  const text = `${JSON.stringify(me)}\n`;
  try {
    writeFileSync(path, text, { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new RunDirError(`cannot lock run directory ${dir} (writing ${path}): ${fsReason(err)}`);
    }
    const holder = readHolder(path);
    if (holder && !(holder.host === hostname() && !pidAlive(holder.pid))) throw inUse(dir, holder);
    // Stale (its process is gone) or unreadable (torn by a crash while being written): take it over.
    const mine = `${path}.${process.pid}`;
    try {
      writeFileSync(mine, text);
      renameSync(mine, path);
    } catch (e) {
      rmSync(mine, { force: true });
      throw new RunDirError(`cannot lock run directory ${dir} (writing ${path}): ${fsReason(e)}`);
    }
    const now = readHolder(path);
    if (now?.pid !== process.pid || now.host !== me.host) throw inUse(dir, now ?? holder ?? me);
  }
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    const h = readHolder(path);
    if (h?.pid === process.pid && h.host === me.host) rmSync(path, { force: true });
  };
  // process.exit() (a second Ctrl-C) skips finally blocks but runs 'exit' listeners.
  process.on('exit', release);
  return { path, release };
}
