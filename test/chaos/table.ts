/**
 * The chaos loop's result table: per event kind, how many events, and the p50 and max of the
 * detection and recovery times (measured by the harness from the moment it injected the fault;
 * what "detected" and "recovered" mean per kind is in loop.ts). Pure, so the numbers printed are
 * unit-tested.
 */
import { CHAOS_KINDS, type ChaosKind } from './schedule.ts';

/** What the harness measured for one event. */
export interface ChaosRecord {
  readonly index: number;
  readonly run: number;
  readonly kind: ChaosKind;
  /** `rank 1`, `2 -> 3 workers`, or the process hit. */
  readonly target: string;
  /** Where the run was when the fault was injected: `epoch 2 step 7`. */
  readonly at: string;
  readonly detectMs: number;
  readonly recoverMs: number;
  /** Restarts the workflow recorded while this event was handled. */
  readonly restarts: number;
}

/** One row of the table. */
export interface KindSummary {
  readonly kind: ChaosKind;
  readonly count: number;
  readonly detectP50Ms: number;
  readonly detectMaxMs: number;
  readonly recoverP50Ms: number;
  readonly recoverMaxMs: number;
  readonly restarts: number;
}

/** The median (the lower middle of an even count), as the table prints it. */
export function p50(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[(sorted.length - 1) >> 1];
}

/** One row per kind that occurred, in {@link CHAOS_KINDS} order. */
export function summarise(records: readonly ChaosRecord[]): KindSummary[] {
  const rows: KindSummary[] = [];
  for (const kind of CHAOS_KINDS) {
    const of = records.filter((r) => r.kind === kind);
    if (of.length === 0) continue;
    const detect = of.map((r) => r.detectMs);
    const recover = of.map((r) => r.recoverMs);
    rows.push({
      kind,
      count: of.length,
      detectP50Ms: p50(detect),
      detectMaxMs: Math.max(...detect),
      recoverP50Ms: p50(recover),
      recoverMaxMs: Math.max(...recover),
      restarts: of.reduce((n, r) => n + r.restarts, 0),
    });
  }
  return rows;
}

const sec = (ms: number) => (ms / 1000).toFixed(1);

/** The table as text (seconds, one decimal). */
export function formatTable(rows: readonly KindSummary[]): string {
  const head = [
    'kind',
    'events',
    'detect p50 s',
    'detect max s',
    'recover p50 s',
    'recover max s',
    'restarts',
  ];
  const body = rows.map((r) => [
    r.kind,
    String(r.count),
    sec(r.detectP50Ms),
    sec(r.detectMaxMs),
    sec(r.recoverP50Ms),
    sec(r.recoverMaxMs),
    String(r.restarts),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
