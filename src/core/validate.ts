/**
 * Argument checks shared by the core modules. Each throws `CoreValueError` with a message that
 * names the argument (as `where`) and quotes the bad value, so a caller sees what to fix.
 */
import { CoreValueError } from './errors.ts';

/** Throws unless `value` is an integer >= 1. */
export function requirePositiveInt(where: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new CoreValueError(`${where} (${value}) must be an integer >= 1`);
  }
}

/** Throws unless `value` is an integer >= 0. */
export function requireNonNegativeInt(where: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new CoreValueError(`${where} (${value}) must be an integer >= 0`);
  }
}

/** Throws unless `value` is a finite number > 0. */
export function requirePositive(where: string, value: number): void {
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new CoreValueError(`${where} (${value}) must be a finite number > 0`);
  }
}

/** Throws unless `value` is a finite number >= 0. */
export function requireNonNegative(where: string, value: number): void {
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new CoreValueError(`${where} (${value}) must be a finite number >= 0`);
  }
}

/** Throws unless every entry of `labels` is an integer class id in [0, numClasses). */
export function requireLabels(where: string, labels: ArrayLike<number>, numClasses: number): void {
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= numClasses) {
      throw new CoreValueError(`${where}[${i}] (${y}) must be an integer class id in [0, ${numClasses})`);
    }
  }
}
