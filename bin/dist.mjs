/**
 * Which code the `bbn` command runs. Set-up (scripts/setup-dist.sh) compiles src/ to dist/ and
 * stamps it with a hash of everything the build read; `bin/bbn.mjs` runs dist/ only when that stamp
 * equals the hash of the sources on disk now, so an edited checkout never runs stale JavaScript (it
 * runs the TypeScript through tsx instead, as slow as before, until `npm run build`). Hashing the
 * sources costs ~10 ms; a compiled start saves seconds.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file's parent's parent). */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Where the compiled JavaScript goes. */
export const DIST = join(ROOT, 'dist');
/** The stamp: the source hash dist/ was built from, written last by a complete build. */
export const STAMP = join(DIST, '.source-hash');

/** Files besides src/ that change the output: the build itself and the compiler's settings. */
export const BUILD_INPUTS = ['scripts/build-dist.mjs', 'tsconfig.json', 'package-lock.json'];

/** Hash of every file under src/ (path and bytes) and of the build inputs; a missing file counts as such. */
export function sourceHash() {
  const hash = createHash('sha256');
  const src = join(ROOT, 'src');
  const files = readdirSync(src, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(ROOT, join(e.parentPath ?? e.path, e.name)))
    .sort();
  for (const f of [...files, ...BUILD_INPUTS]) {
    hash.update(`${f}\0`);
    try {
      hash.update(readFileSync(join(ROOT, f)));
    } catch {
      hash.update('\0missing\0');
    }
    hash.update('\0');
  }
  return hash.digest('hex');
}

/** The hash dist/ was built from, or undefined when there is no complete build. */
export function distStamp() {
  try {
    return readFileSync(STAMP, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** True when dist/ was built from exactly the sources on disk now. */
export function distIsCurrent() {
  const stamp = distStamp();
  return stamp !== undefined && stamp === sourceHash();
}
