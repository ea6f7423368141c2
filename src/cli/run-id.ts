/** The Temporal run id of a local run: its directory's name (a light module: `bbn status DIR` needs it at once). */
import { basename, resolve } from 'node:path';

/** A run id from a directory name: Temporal ids here are `[A-Za-z0-9._-]+`. */
export function runIdFor(outDir: string): string {
  const id = basename(resolve(outDir)).replace(/[^A-Za-z0-9._-]+/g, '-');
  return id || 'run';
}
