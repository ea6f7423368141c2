/**
 * The error type of core routines. Its own module so that code which must not load `rng.ts` (the
 * Temporal workflow bundle: `rng.ts` imports `node:crypto`, which the workflow sandbox rejects)
 * can still throw and catch it.
 */

/** Error raised for an invalid argument to a core routine (names the argument and its value). */
export class CoreValueError extends Error {
  override name = 'CoreValueError';
}
