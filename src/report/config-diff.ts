/**
 * What differs between the configs of compared runs. A comparison is meant to change one thing
 * (usually the method); a report of runs that also differ in data, schedule or model says so with
 * a warning and lists every setting that differs, so a reader does not credit the method with the
 * effect of another change. Pure: the configs are the parsed `config.yaml` files.
 */

/** Settings that name a run rather than change it: never reported as differences. */
const IGNORED = new Set(['name']);
/** The setting a comparison is expected to change. */
const EXPECTED = new Set(['method']);

/** A config's primitive leaves by dotted key (arrays as JSON). */
export function flattenConfig(cfg: unknown, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (v: unknown, key: string) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(x, key ? `${key}.${k}` : k);
    } else if (v !== undefined) out.set(key, JSON.stringify(v));
  };
  walk(cfg, prefix);
  return out;
}

/** One setting that differs: its key and each run's value (`null`: the run's config lacks it). */
export interface ConfigDifference {
  readonly key: string;
  readonly values: readonly (string | null)[];
}

/** Every setting whose value is not the same in all `configs` (runs without a config are skipped). */
export function configDifferences(configs: readonly (unknown | null)[]): ConfigDifference[] {
  const flat = configs.filter((c) => c !== null).map((c) => flattenConfig(c));
  if (flat.length < 2) return [];
  const keys = [...new Set(flat.flatMap((f) => [...f.keys()]))].sort();
  return keys
    .filter((k) => !IGNORED.has(k) && new Set(flat.map((f) => f.get(k) ?? null)).size > 1)
    .map((key) => ({ key, values: flat.map((f) => f.get(key) ?? null) }));
}

/** The warning for differences beyond the method, or null when the runs differ only there. */
export function differenceWarning(diffs: readonly ConfigDifference[]): string | null {
  const unexpected = diffs.filter((d) => !EXPECTED.has(d.key));
  if (unexpected.length === 0) return null;
  const shown = unexpected
    .slice(0, 6)
    .map((d) => `${d.key} (${d.values.map((v) => v ?? '-').join(' vs ')})`)
    .join(', ');
  const more = unexpected.length > 6 ? ` and ${unexpected.length - 6} more` : '';
  return `the compared runs differ in more than the method: ${shown}${more}`;
}
