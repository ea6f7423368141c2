/**
 * Checkpoint files: atomic, checksummed, self-describing.
 *
 * Layout of one file (all integers little-endian):
 *   8 bytes  magic "BBNCKPT1"
 *   4 bytes  header length H
 *   H bytes  header, UTF-8 JSON (`CheckpointHeader`)
 *   ...      payload: the float32 sections, back to back, in header order
 *   32 bytes SHA-256 of everything before it
 *
 * Writing goes to a temporary file that is fsynced, then renamed over the final name, then the
 * directory is fsynced: a crash at any moment leaves either the old set of checkpoints or the new
 * one, never a half-written file under a checkpoint name. Readers verify magic, checksum, header
 * and the model signature, and `loadLatestGood` falls back to the previous file when one is bad.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type AtomicWriteOptions, syncDirectory, writeFileAtomic } from './atomic-file.ts';
import { type CheckpointRunRef, foreignReason, type RunIdentity } from './run-identity.ts';

const MAGIC = Buffer.from('BBNCKPT1', 'latin1');
const DIGEST_BYTES = 32;
const FILE_PATTERN = /^ckpt-e\d{6}-s\d{7}\.bbnckpt$/;

/** A checkpoint that cannot be used: unreadable, corrupt, truncated, or from another model/run. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** What a checkpoint describes besides its tensors. */
export interface CheckpointMeta {
  /** Last completed epoch (1-based, 0 before the first); training resumes in epoch + 1. */
  readonly epoch: number;
  /** Steps of epoch + 1 already done (0 at an epoch boundary; > 0 for a checkpoint taken on a stop request). */
  readonly step: number;
  /** Architecture signature of the model; a checkpoint of another model is refused. */
  readonly modelSignature: string;
  /** The resolved run configuration that produced it. */
  readonly config: unknown;
  /** The run that wrote it (run-identity.ts); absent in checkpoints of runs made before identities. */
  readonly run?: CheckpointRunRef;
  /** Anything else the trainer must restore (optimizer step flag, RNG states, best top-1 so far...). */
  readonly extra: Record<string, unknown>;
}

/** A checkpoint's content: metadata plus named float32 sections (params, buffers, momentum...). */
export interface Checkpoint {
  readonly meta: CheckpointMeta;
  readonly sections: Readonly<Record<string, Float32Array>>;
}

interface CheckpointHeader {
  readonly format: 1;
  readonly meta: CheckpointMeta;
  readonly sections: readonly { readonly name: string; readonly length: number }[];
}

/** File name of the checkpoint taken after `epoch` full epochs and `step` steps of the next (sortable by name). */
export function checkpointFileName(epoch: number, step = 0): string {
  return `ckpt-e${String(epoch).padStart(6, '0')}-s${String(step).padStart(7, '0')}.bbnckpt`;
}

/** Serialises a checkpoint to bytes (header, payload, trailing SHA-256). */
export function encodeCheckpoint(ckpt: Checkpoint): Buffer {
  const names = Object.keys(ckpt.sections);
  const header: CheckpointHeader = {
    format: 1,
    meta: ckpt.meta,
    sections: names.map((name) => ({ name, length: ckpt.sections[name].length })),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const payloadBytes = names.reduce((n, name) => n + ckpt.sections[name].byteLength, 0);
  const out = Buffer.allocUnsafe(MAGIC.length + 4 + headerBytes.length + payloadBytes + DIGEST_BYTES);
  let at = MAGIC.copy(out, 0);
  at = out.writeUInt32LE(headerBytes.length, at);
  at += headerBytes.copy(out, at);
  for (const name of names) {
    const s = ckpt.sections[name];
    at += Buffer.from(s.buffer, s.byteOffset, s.byteLength).copy(out, at);
  }
  createHash('sha256').update(out.subarray(0, at)).digest().copy(out, at);
  return out;
}

/** Parses and verifies checkpoint bytes; `source` names the file in errors. */
export function decodeCheckpoint(bytes: Buffer, source: string): Checkpoint {
  const minimum = MAGIC.length + 4 + DIGEST_BYTES;
  if (bytes.length < minimum || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new CheckpointError(
      `${source} is not a BBN checkpoint (bad magic or too short: ${bytes.length} bytes)`,
    );
  }
  const body = bytes.subarray(0, bytes.length - DIGEST_BYTES);
  const digest = createHash('sha256').update(body).digest();
  if (!digest.equals(bytes.subarray(bytes.length - DIGEST_BYTES))) {
    throw new CheckpointError(`${source} is corrupt or truncated (checksum mismatch)`);
  }
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  const headerStart = MAGIC.length + 4;
  if (headerStart + headerLength > body.length) {
    throw new CheckpointError(`${source} has a header length (${headerLength}) past the end of the file`);
  }
  let header: CheckpointHeader;
  try {
    header = JSON.parse(body.subarray(headerStart, headerStart + headerLength).toString('utf8'));
  } catch (err) {
    throw new CheckpointError(`${source} has an unreadable header: ${(err as Error).message}`);
  }
  if (
    header?.format !== 1 ||
    !Array.isArray(header.sections) ||
    typeof header.meta?.epoch !== 'number' ||
    typeof header.meta?.step !== 'number'
  ) {
    throw new CheckpointError(`${source} has a header of an unknown format`);
  }
  const sections: Record<string, Float32Array> = {};
  let at = headerStart + headerLength;
  for (const { name, length } of header.sections) {
    const size = length * 4;
    if (!Number.isInteger(length) || length < 0 || at + size > body.length) {
      throw new CheckpointError(`${source}: section ${name} (${length} floats) does not fit in the file`);
    }
    // Copy into a fresh, aligned buffer: the section's offset in the file is not 4-byte aligned.
    const section = new Float32Array(length);
    Buffer.from(section.buffer).set(body.subarray(at, at + size));
    sections[name] = section;
    at += size;
  }
  if (at !== body.length)
    throw new CheckpointError(`${source} has ${body.length - at} unexpected trailing bytes`);
  return { meta: header.meta, sections };
}

/**
 * Writes `ckpt` atomically as `dir/<checkpointFileName(epoch, step)>` (temporary file, fsync, rename,
 * directory fsync), then deletes all but the newest `keep` checkpoints. Returns the file path.
 */
export async function writeCheckpoint(dir: string, ckpt: Checkpoint, keep: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const final = join(dir, checkpointFileName(ckpt.meta.epoch, ckpt.meta.step));
  const bytes = encodeCheckpoint(ckpt);
  writeFileAtomic(final, bytes, checkpointWritePause(bytes.length));
  syncDirectory(dir);
  for (const old of listCheckpoints(dir).slice(0, -keep)) rmSync(join(dir, old), { force: true });
  return final;
}

/** Checkpoint writes of this thread so far (for {@link checkpointWritePause}). */
let writes = 0;

/**
 * A fault point for the kill-during-save test, off unless `BBN_FAULT_PAUSE_CHECKPOINT_WRITE=N`:
 * the N-th checkpoint write of the thread is made in two halves, and after the first half is
 * fsynced the writer says so on stderr (`bbn-fault: checkpoint write paused …`, the temporary
 * file and its size) and blocks for good, so that a test's SIGKILL provably lands mid-write.
 */
function checkpointWritePause(total: number): AtomicWriteOptions {
  writes++;
  if (Number(process.env.BBN_FAULT_PAUSE_CHECKPOINT_WRITE) !== writes) return {};
  return {
    chunkBytes: Math.ceil(total / 2),
    afterChunk(written, size, temporary) {
      writeSync(2, `bbn-fault: checkpoint write paused after ${written} of ${size} bytes in ${temporary}\n`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // until killed
    },
  };
}

/** Checkpoint file names in `dir`, oldest first (temporary files are ignored). */
export function listCheckpoints(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => FILE_PATTERN.test(n)).sort();
}

/** What a checkpoint must match to be used; every field is optional. */
export interface CheckpointExpectations {
  /** Model signature (architecture and layout). */
  readonly signature?: string;
  /** The run directory's identity: checkpoints of other runs are refused. */
  readonly run?: RunIdentity;
  /** Exact float counts of named sections (e.g. params and buffers of the model to restore into). */
  readonly sections?: Readonly<Record<string, number>>;
  /** Refuse sections holding NaN or ±Infinity (a diverged run's weights). */
  readonly finite?: boolean;
  /** Any further check: the reason the checkpoint cannot be used, or undefined. */
  readonly check?: (ckpt: Checkpoint) => string | undefined;
}

/** The first non-finite value of `a` as `[index, value]`, or undefined. */
export function firstNonFinite(a: Float32Array): [number, number] | undefined {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return [i, a[i]];
  return undefined;
}

/** Why `ckpt` (read from `path`) does not meet `expect`, or undefined when it does. */
export function checkpointMismatch(
  path: string,
  ckpt: Checkpoint,
  expect: CheckpointExpectations,
): string | undefined {
  const { meta, sections } = ckpt;
  if (expect.signature !== undefined && meta.modelSignature !== expect.signature) {
    return `${path} belongs to another model (signature ${meta.modelSignature}, expected ${expect.signature})`;
  }
  const foreign = foreignReason(expect.run, meta.run);
  if (foreign) return `${path} ${foreign}`;
  for (const [name, length] of Object.entries(expect.sections ?? {})) {
    const got = sections[name]?.length;
    if (got !== length) {
      return `${path}: section ${name} has ${got ?? 'no'} floats, the model needs ${length}`;
    }
  }
  if (expect.finite) {
    for (const [name, values] of Object.entries(sections)) {
      const bad = firstNonFinite(values);
      if (bad)
        return `${path}: section ${name} holds non-finite weights (${bad[1]} at ${bad[0]}): the run had diverged`;
    }
  }
  const other = expect.check?.(ckpt);
  return other === undefined ? undefined : `${path}: ${other}`;
}

/**
 * Reads and verifies one checkpoint file; refuses one that does not meet `expect` (a string is
 * the model signature alone).
 */
export function readCheckpoint(path: string, expect?: string | CheckpointExpectations): Checkpoint {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new CheckpointError(
      `cannot read checkpoint ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  const ckpt = decodeCheckpoint(bytes, path);
  const e = typeof expect === 'string' ? { signature: expect } : (expect ?? {});
  const mismatch = checkpointMismatch(path, ckpt, e);
  if (mismatch) throw new CheckpointError(mismatch);
  return ckpt;
}

/** The newest usable checkpoint in `dir` and the files skipped on the way, with reasons. */
export interface LatestCheckpoint {
  readonly path: string;
  readonly checkpoint: Checkpoint;
  readonly rejected: readonly { readonly path: string; readonly reason: string }[];
}

/**
 * The newest checkpoint in `dir` that verifies (and meets `expect`), falling back to older ones;
 * `undefined` if there is none. Rejected files are reported, not deleted; when every file is
 * rejected the `CheckpointError` names each one and why, on one line.
 */
export function loadLatestGood(
  dir: string,
  expect?: string | CheckpointExpectations,
): LatestCheckpoint | undefined {
  const rejected: { path: string; reason: string }[] = [];
  for (const name of listCheckpoints(dir).reverse()) {
    const path = join(dir, name);
    try {
      return { path, checkpoint: readCheckpoint(path, expect), rejected };
    } catch (err) {
      if (!(err instanceof CheckpointError)) throw err;
      rejected.push({ path, reason: err.message });
    }
  }
  if (rejected.length > 0) {
    throw new CheckpointError(
      `no usable checkpoint in ${dir} (${rejected.length} rejected): ${rejected.map((r) => r.reason).join('; ')}`,
    );
  }
  return undefined;
}
