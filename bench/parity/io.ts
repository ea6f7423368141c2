/** Small file and argument helpers shared by the parity bench scripts. */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/** `0-9,12` → [0, 1, …, 9, 12]. */
export function parseSeeds(text: string): number[] {
  return text.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number);
    if (!Number.isInteger(a) || (b !== undefined && !Number.isInteger(b))) {
      throw new Error(`--seeds: cannot read '${part}' (use e.g. 0-9,12)`);
    }
    return b === undefined ? [a] : Array.from({ length: b - a + 1 }, (_, i) => a + i);
  });
}

/** Appends one JSON line to `file` (creating its folder). */
export function appendJsonl(file: string, row: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  appendFileSync(file, `${JSON.stringify(row)}\n`);
}
