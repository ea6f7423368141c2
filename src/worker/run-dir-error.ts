/**
 * The run directory's error family: a run directory that cannot be created, written, locked or
 * trusted. Its message is the whole story for a user (the CLI prints it as one line, exit 2), so
 * file-system failures are turned into words here, once, instead of surfacing as raw `EACCES`
 * stack traces.
 */

/** A run directory that cannot be used as asked; names the path and what to do. */
export class RunDirError extends Error {
  override name = 'RunDirError';
  readonly userFacing = true;
}

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOTDIR: 'a part of the path is a file, not a directory',
  EISDIR: 'it is a directory',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'no such file or directory',
  EEXIST: 'it already exists',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many symbolic links',
};

/** A file-system error as a few words ("permission denied (EACCES)"); other errors by message. */
export function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code && REASONS[code]) return `${REASONS[code]} (${code})`;
  if (code) return code;
  return err instanceof Error ? err.message : String(err);
}

/** Whether `err` is a Node file-system error (it has an errno code). */
export function isFsError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string';
}
