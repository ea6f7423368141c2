/** The error family of a worker rank. */

/** A failure of this rank that its message fully explains (printed as one line by the CLI). */
export class WorkerError extends Error {
  override name = 'WorkerError';
  readonly userFacing = true;
}
