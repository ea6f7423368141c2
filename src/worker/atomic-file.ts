/** Crash-safe file writes: a temporary file, fsync, then rename over the final name. */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** Bytes per write call (default: all at once). */
  readonly chunkBytes?: number;
  /**
   * Called after each chunk but the last, the bytes so far fsynced to the temporary file (fault
   * tests place a kill there: `checkpointWritePause` in checkpoint.ts).
   */
  readonly afterChunk?: (written: number, total: number, temporary: string) => void;
}

/** Writes `bytes` to `path` so that a crash leaves either the old file or the whole new one. */
export function writeFileAtomic(
  path: string,
  bytes: Uint8Array | string,
  opts: AtomicWriteOptions = {},
): void {
  const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  const temporary = `${path}.tmp-${process.pid}`;
  const chunk = Math.max(1, opts.chunkBytes ?? data.length);
  const fd = openSync(temporary, 'w');
  try {
    let at = 0;
    while (at < data.length) {
      const end = Math.min(data.length, at + chunk);
      while (at < end) at += writeSync(fd, data, at, end - at);
      if (opts.afterChunk && at < data.length) {
        fsyncSync(fd);
        opts.afterChunk(at, data.length, temporary);
      }
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
}

/** Fsyncs a directory, so that a rename inside it survives a power loss. */
export function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
