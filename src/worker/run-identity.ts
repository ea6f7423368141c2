/**
 * A run directory's identity: `run.json`, written once when the run is created, holds a random run
 * id and the digest of what defines the run's model and data (`IDENTITY_FIELDS`). Checkpoints carry
 * both (run-checkpoint.ts), so a checkpoint copied in from another run, or one made with another
 * model or data set, is skipped and named instead of silently adopted, and a resume whose config
 * changes one of those fields is refused with the field named.
 *
 * Why not the whole config: a resume may legitimately change how the run continues (more epochs,
 * another lr schedule, more workers); it may not change what the weights mean.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fsReason, RunDirError } from './run-dir-error.ts';

export { RunDirError };

/** The config fields a run's weights depend on: a resume may not change them. */
export const IDENTITY_FIELDS = ['method', 'seed', 'dataset', 'model'] as const;

/** Contents of run.json. */
export interface RunIdentity {
  readonly format: 1;
  /** Random, made once when the run directory is created. */
  readonly runId: string;
  /** SHA-256 (hex, 16 characters) of the identity fields of the run's resolved config. */
  readonly configDigest: string;
  readonly name: string;
  readonly createdAt: string;
  /**
   * True when the identity was written later for a run directory made before identities existed:
   * its checkpoints carry none and are accepted.
   */
  readonly adopted?: boolean;
}

/** What a checkpoint records of the run that wrote it (a subset of `RunIdentity`). */
export interface CheckpointRunRef {
  readonly runId: string;
  readonly configDigest: string;
}

/** Path of run.json in a run directory. */
export function identityPath(dir: string): string {
  return join(dir, 'run.json');
}

type Plain = Record<string, unknown>;

/** JSON with object keys sorted, so that equal configs give equal text. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Plain;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Digest of the identity fields of a resolved config. */
export function identityDigest(cfg: unknown): string {
  const c = (cfg ?? {}) as Plain;
  const picked = Object.fromEntries(IDENTITY_FIELDS.map((f) => [f, c[f]]));
  return createHash('sha256').update(canonical(picked)).digest('hex').slice(0, 16);
}

/**
 * The identity fields that differ between the config a run was created with and `next`, as
 * `path (old → new)`, leaves only (e.g. `model.depth (8 → 14)`).
 */
export function identityChanges(saved: unknown, next: unknown): string[] {
  const out: string[] = [];
  const walk = (a: unknown, b: unknown, path: string) => {
    const objA = a !== null && typeof a === 'object' && !Array.isArray(a);
    const objB = b !== null && typeof b === 'object' && !Array.isArray(b);
    if (objA && objB) {
      const keys = new Set([...Object.keys(a as Plain), ...Object.keys(b as Plain)]);
      for (const k of [...keys].sort()) walk((a as Plain)[k], (b as Plain)[k], `${path}.${k}`);
      return;
    }
    if (canonical(a) !== canonical(b)) {
      const show = (v: unknown) => (v === undefined ? '(unset)' : canonical(v));
      out.push(`${path.slice(1)} (${show(a)} → ${show(b)})`);
    }
  };
  const s = (saved ?? {}) as Plain;
  const n = (next ?? {}) as Plain;
  for (const f of IDENTITY_FIELDS) walk(s[f], n[f], `.${f}`);
  return out;
}

/** run.json of `dir`, or undefined when there is none; a damaged one is a `RunDirError`. */
export function readRunIdentity(dir: string): RunIdentity | undefined {
  const path = identityPath(dir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new RunDirError(`cannot read ${path}: ${fsReason(err)}`);
  }
  let parsed: Partial<RunIdentity>;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RunDirError(
      `${path} is not JSON; it is the run's identity, written once when the run was created`,
    );
  }
  if (parsed?.format !== 1 || typeof parsed.runId !== 'string' || typeof parsed.configDigest !== 'string') {
    throw new RunDirError(`${path} is not a run identity (needs format 1, runId and configDigest)`);
  }
  return parsed as RunIdentity;
}

/**
 * Writes run.json for a run of `cfg` (exclusive create: an existing identity is never
 * overwritten; `replace` allows it for a directory that holds no trained state). Returns it.
 */
export function writeRunIdentity(
  dir: string,
  cfg: { readonly name?: string },
  opts: { adopted?: boolean; replace?: boolean } = {},
): RunIdentity {
  const identity: RunIdentity = {
    format: 1,
    runId: randomUUID(),
    configDigest: identityDigest(cfg),
    name: cfg.name ?? '',
    createdAt: new Date().toISOString(),
    ...(opts.adopted ? { adopted: true } : {}),
  };
  try {
    writeFileSync(identityPath(dir), `${JSON.stringify(identity, null, 2)}\n`, {
      flag: opts.replace ? 'w' : 'wx',
    });
  } catch (err) {
    throw new RunDirError(`cannot write ${identityPath(dir)}: ${fsReason(err)}`);
  }
  return identity;
}

/** The reference a checkpoint of this run carries. */
export function checkpointRef(identity: RunIdentity): CheckpointRunRef {
  return { runId: identity.runId, configDigest: identity.configDigest };
}

/**
 * Why a checkpoint with run reference `ref` does not belong to the run `identity` (undefined when
 * it does). A checkpoint without a reference is accepted only by an adopted (pre-identity) run.
 */
export function foreignReason(
  identity: RunIdentity | undefined,
  ref: CheckpointRunRef | undefined,
): string | undefined {
  if (!identity) return undefined;
  if (!ref) {
    return identity.adopted
      ? undefined
      : `carries no run identity, and this directory is run ${identity.runId}`;
  }
  if (ref.runId !== identity.runId) {
    return `belongs to another run (run ${ref.runId}; this directory is run ${identity.runId})`;
  }
  if (ref.configDigest !== identity.configDigest) {
    return `was made with another model or data config (digest ${ref.configDigest}, this run ${identity.configDigest})`;
  }
  return undefined;
}
