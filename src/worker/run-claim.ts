/**
 * Taking a run directory before anything is written into it (FAILURE-LESSONS 15: never write into
 * a run you could not restore; a new run never lands on an old run's directory). Every `bbn train`
 * path calls {@link claimRunDir} first:
 *
 * - a new run refuses a directory that already holds a trained run (checkpoints, metrics rows or
 *   a summary) unless `force`, which moves the old run aside (never deletes it); a stub left by a
 *   run that failed before its first epoch is reused;
 * - a resume refuses a config whose model or data differ from the run's (`IDENTITY_FIELDS`),
 *   naming each changed field;
 * - both take the directory's lock (run-lock.ts), so two processes never train into one, and
 *   turn file-system failures (read-only, not a directory, permission) into one clear line.
 */
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  type Stats,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { listCheckpoints } from './checkpoint.ts';
import { runPaths } from './run-dir.ts';
import { fsReason, RunDirError } from './run-dir-error.ts';
import {
  identityChanges,
  identityDigest,
  type RunIdentity,
  readRunIdentity,
  writeRunIdentity,
} from './run-identity.ts';
import { acquireRunLock, lockHolder, type RunLock } from './run-lock.ts';

/** A claimed run directory; `release()` frees its lock (idempotent). */
export interface RunClaim {
  readonly dir: string;
  readonly identity: RunIdentity;
  /** Where `force` moved the previous run. */
  readonly movedAside?: string;
  release(): void;
  /**
   * For a run refused before it trained (bad data or config found after the claim): when the
   * directory holds no trained run, removes what this claim and the run added, puts back a run
   * that `force` moved aside, and releases the lock; true if it did. A resume never discards.
   */
  discard(): boolean;
}

/** Options of {@link claimRunDir}. */
export interface ClaimOptions {
  /** Continue the run in `dir` instead of creating one. */
  readonly resume: boolean;
  /** New run only: move an existing run in `dir` aside instead of refusing. */
  readonly force?: boolean;
  /** Take the directory's lock (default true; false where the ranks run on other hosts). */
  readonly lock?: boolean;
  /**
   * A run found in `dir` is continued rather than refused: a cluster orchestrator restarted by its
   * Deployment (`--external-workers`) re-attaches to or resumes the run it was serving.
   */
  readonly continueExisting?: boolean;
}

function statOf(path: string, what: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RunDirError(`${what} ${path}: ${fsReason(err)}`);
  }
}

/** What a directory holds of a trained run (empty for a new or stub directory). */
export function runProgress(dir: string): string[] {
  const p = runPaths(dir);
  const found: string[] = [];
  const ckpts = listCheckpoints(p.checkpoints).length;
  if (ckpts > 0) found.push(`${ckpts} checkpoint${ckpts > 1 ? 's' : ''}`);
  try {
    if (readFileSync(p.metrics, 'utf8').trim() !== '') found.push('metrics.jsonl');
  } catch {}
  if (statOf(p.summary, 'run summary')) found.push('summary.json');
  return found;
}

/** A free name beside `dir` for the run `force` moves aside. */
function asideName(dir: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  let name = `${dir}.replaced-${stamp}`;
  for (let i = 2; statOf(name, 'run directory'); i++) name = `${dir}.replaced-${stamp}-${i}`;
  return name;
}

const noLock: RunLock = { path: '', release() {} };

/**
 * Undoes a new run's claim of `dir` if nothing was trained there: the entries that were not in
 * `before` go (the lock last), then the directory itself if the claim created it, and a run moved
 * aside comes back.
 */
function discardNew(
  dir: string,
  before: ReadonlySet<string>,
  created: boolean,
  lock: RunLock,
  aside?: string,
) {
  if (runProgress(dir).length > 0) return false;
  for (const name of readdirSync(dir)) {
    if (!before.has(name) && join(dir, name) !== lock.path)
      rmSync(join(dir, name), { recursive: true, force: true });
  }
  lock.release();
  if (created) {
    try {
      rmdirSync(dir);
    } catch {} // something else wrote into it meanwhile: leave that
  }
  if (aside) renameSync(aside, dir);
  return true;
}

/** Claims `dir` for a new run of `cfg`, or for resuming it (see the module doc). */
export function claimRunDir(dir: string, cfg: { readonly name?: string }, opts: ClaimOptions): RunClaim {
  const st = statOf(dir, 'run directory');
  if (st && !st.isDirectory()) throw new RunDirError(`run directory ${dir} is a file, not a directory`);
  const resume = opts.resume || (!!opts.continueExisting && !!st && runProgress(dir).length > 0);
  return resume ? claimForResume(dir, cfg, st, opts) : claimNew(dir, cfg, st, opts);
}

function claimNew(
  dir: string,
  cfg: { readonly name?: string },
  st: Stats | undefined,
  opts: ClaimOptions,
): RunClaim {
  let movedAside: string | undefined;
  const progress = st ? runProgress(dir) : [];
  if (progress.length > 0) {
    if (!opts.force) {
      throw new RunDirError(
        `${dir} already holds a run (${progress.join(', ')}); continue it with bbn train --resume ${dir}, ` +
          'or add --force to move it aside and start a new run there',
      );
    }
    const holder = lockHolder(dir);
    if (holder) {
      throw new RunDirError(
        `${dir} holds a run that process ${holder.pid} on ${holder.host} is training; --force does not move a live run`,
      );
    }
    movedAside = asideName(dir);
    try {
      renameSync(dir, movedAside);
    } catch (err) {
      throw new RunDirError(`cannot move the old run ${dir} aside to ${movedAside}: ${fsReason(err)}`);
    }
  }
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new RunDirError(`cannot create run directory ${dir}: ${fsReason(err)}`);
  }
  const created = !st || !!movedAside;
  const before = new Set(created ? [] : readdirSync(dir));
  const lock = opts.lock === false ? noLock : acquireRunLock(dir);
  try {
    const existing = movedAside ? undefined : readRunIdentity(dir);
    const identity =
      existing && existing.configDigest === identityDigest(cfg)
        ? existing
        : writeRunIdentity(dir, cfg, { replace: !!existing });
    let discarded = false;
    const discard = () => {
      if (discarded) return true;
      discarded = discardNew(dir, before, created, lock, movedAside);
      return discarded;
    };
    return { dir, identity, movedAside, release: lock.release, discard };
  } catch (err) {
    lock.release();
    throw err;
  }
}

function claimForResume(
  dir: string,
  cfg: { readonly name?: string },
  st: Stats | undefined,
  opts: ClaimOptions,
): RunClaim {
  if (!st) throw new RunDirError(`--resume ${dir}: no such run directory`);
  const saved = readSavedConfig(dir);
  const changes = identityChanges(saved, cfg);
  if (changes.length > 0) {
    throw new RunDirError(
      `--resume ${dir}: ${changes.join(', ')} would change the run's model or data, which a resume cannot do; ` +
        'start a new run with --out instead',
    );
  }
  const lock = opts.lock === false ? noLock : acquireRunLock(dir);
  try {
    let identity = readRunIdentity(dir);
    if (identity && identity.configDigest !== identityDigest(cfg)) {
      throw new RunDirError(
        `--resume ${dir}: config.yaml no longer matches the run's identity in run.json (its model or data ` +
          `were changed after the run was created: digest ${identityDigest(cfg)}, run ${identity.configDigest})`,
      );
    }
    // A run made before identities existed: adopt it (its checkpoints carry none).
    identity ??= writeRunIdentity(dir, saved as { name?: string }, { adopted: true });
    return { dir, identity, release: lock.release, discard: () => false };
  } catch (err) {
    lock.release();
    throw err;
  }
}

/** The resolved config a run was created with (config.yaml). */
function readSavedConfig(dir: string): unknown {
  const path = runPaths(dir).config;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const hint =
      (err as NodeJS.ErrnoException).code === 'ENOENT'
        ? `is this a run directory made by bbn train? (it holds ${listing(dir)})`
        : fsReason(err);
    throw new RunDirError(`--resume ${dir}: cannot read ${path}: ${hint}`);
  }
  try {
    const raw = parseYaml(text);
    if (raw === null || typeof raw !== 'object') throw new Error('not a mapping');
    return raw;
  } catch (err) {
    throw new RunDirError(`--resume ${dir}: ${path} is not a YAML mapping (${(err as Error).message})`);
  }
}

function listing(dir: string): string {
  try {
    const names = readdirSync(dir);
    return names.length === 0 ? 'nothing' : names.slice(0, 5).join(', ');
  } catch (err) {
    return fsReason(err);
  }
}
