/**
 * Reading Prometheus text exposition (format 0.0.4) in tests, two ways:
 *   - `parseExposition`: our own strict parser (always): HELP/TYPE lines, label escapes, float
 *     values incl. ±Inf/NaN, and the histogram invariants (cumulative buckets, `+Inf` = `_count`);
 *   - `parseWithPrometheusClient`: the Prometheus project's own Python parser
 *     (`prometheus_client.parser`), when a Python with it is found (BBN_PYTHON, .venv, python3).
 * No well-kept npm parser exists: `parse-prometheus-text-format` drops the labels, sums and counts
 * of labelled histograms.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** One sample line. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** One metric family: its TYPE, HELP and samples. */
export interface Family {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SUFFIXES: Record<string, readonly string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['_sum', '_count', ''],
  counter: ['', '_total'],
};

function parseValue(text: string, line: string): number {
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (text === 'NaN') return Number.NaN;
  assert.match(text, /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `bad value in: ${line}`);
  return Number(text);
}

/** `{a="x",b="y\"z"}` starting at `s[i] === '{'`; returns the labels and the index after `}`. */
function parseLabels(s: string, i: number, line: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  i++;
  while (s[i] !== '}') {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(s.slice(i));
    assert.ok(m, `bad label in: ${line}`);
    i += m[0].length;
    let v = '';
    for (; s[i] !== '"'; i++) {
      assert.ok(i < s.length, `unterminated label value in: ${line}`);
      if (s[i] === '\\') {
        i++;
        v += s[i] === 'n' ? '\n' : s[i];
      } else v += s[i];
    }
    i++;
    assert.ok(!(m[1] in labels), `duplicate label ${m[1]} in: ${line}`);
    labels[m[1]] = v;
    if (s[i] === ',') i++;
    else assert.equal(s[i], '}', `expected , or } in: ${line}`);
  }
  return [labels, i + 1];
}

/** Parses and checks a whole exposition; every sample belongs to a declared family. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const familyOf = (sample: string): Family | undefined => {
    for (const f of families.values()) {
      for (const suffix of SUFFIXES[f.type] ?? ['']) if (sample === f.name + suffix) return f;
    }
    return undefined;
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      assert.match(meta[2], NAME, `bad metric name in: ${line}`);
      const f = families.get(meta[2]) ?? { name: meta[2], type: 'untyped', help: '', samples: [] };
      families.set(
        meta[2],
        meta[1] === 'HELP' ? { ...f, help: meta[3] ?? '' } : { ...f, type: meta[3] ?? '' },
      );
      continue;
    }
    if (line.startsWith('#')) continue;
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
    assert.ok(name, `bad sample line: ${line}`);
    let [labels, i] = [{} as Record<string, string>, name.length];
    if (line[i] === '{') [labels, i] = parseLabels(line, i, line);
    const rest = line.slice(i).trim().split(/\s+/);
    assert.ok(rest.length === 1 || rest.length === 2, `bad sample line: ${line}`);
    const f = familyOf(name);
    assert.ok(f, `sample ${name} has no # TYPE`);
    f.samples.push({ name, labels, value: parseValue(rest[0], line) });
  }
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: Family): void {
  const series = new Map<string, Sample[]>();
  for (const s of f.samples) {
    const { le: _le, ...rest } = s.labels;
    const key = JSON.stringify(rest);
    series.set(key, [...(series.get(key) ?? []), s]);
  }
  for (const [key, samples] of series) {
    const buckets = samples.filter((s) => s.name.endsWith('_bucket'));
    const count = samples.find((s) => s.name.endsWith('_count'))?.value;
    assert.ok(buckets.length > 0 && count !== undefined, `${f.name}${key}: buckets and _count`);
    for (let i = 1; i < buckets.length; i++) {
      const le = (b: Sample) => parseValue(b.labels.le, `${f.name} le`);
      assert.ok(le(buckets[i]) > le(buckets[i - 1]), `${f.name}: le order`);
      assert.ok(buckets[i].value >= buckets[i - 1].value, `${f.name}${key}: buckets must be cumulative`);
    }
    assert.equal(buckets.at(-1)?.labels.le, '+Inf', `${f.name}${key}: last bucket is +Inf`);
    assert.equal(buckets.at(-1)?.value, count, `${f.name}${key}: +Inf bucket equals _count`);
  }
}

/** The value of one sample, or undefined. */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string>,
): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      const keys = Object.keys(labels);
      if (keys.length === Object.keys(s.labels).length && keys.every((k) => s.labels[k] === labels[k]))
        return s.value;
    }
  }
  return undefined;
}

function pythonWith(module: string): string | undefined {
  const candidates = [process.env.BBN_PYTHON, join(process.cwd(), '.venv/bin/python'), 'python3'];
  for (const py of candidates) {
    if (!py || (py.includes('/') && !existsSync(py))) continue;
    const r = spawnSync(py, ['-c', `import ${module}`], { stdio: 'ignore', timeout: 30_000 });
    if (r.status === 0) return py;
  }
  return undefined;
}

const PY_PARSER = `
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for texts in json.load(sys.stdin):
    fams = []
    for f in text_string_to_metric_families(texts):
        fams.append({"name": f.name, "type": f.type, "samples": [
            {"name": s.name, "labels": s.labels, "value": s.value if math.isfinite(s.value) else ("NaN" if math.isnan(s.value) else ("+Inf" if s.value > 0 else "-Inf"))}
            for s in f.samples]})
    out.append(fams)
print(json.dumps(out))
`;

/** A family as the Prometheus Python client parses it (counter names lose `_total`, as it does). */
export interface PyFamily {
  name: string;
  type: string;
  samples: { name: string; labels: Record<string, string>; value: number | string }[];
}

/**
 * Parses each text with `prometheus_client.parser.text_string_to_metric_families`, in one Python
 * process; undefined when no Python with `prometheus_client` is found.
 */
export function parseWithPrometheusClient(texts: readonly string[]): PyFamily[][] | undefined {
  const py = pythonWith('prometheus_client');
  if (!py) return undefined;
  const r = spawnSync(py, ['-c', PY_PARSER], {
    input: JSON.stringify(texts),
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `prometheus_client parser failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as PyFamily[][];
}

/** Asserts that our parse and the Python client's agree on every sample (name, labels, value). */
export function assertSameAsPrometheusClient(ours: Map<string, Family>, theirs: PyFamily[]): void {
  const key = (name: string, labels: Record<string, string>) =>
    `${name}${JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)))}`;
  const a = new Map<string, number>();
  for (const f of ours.values()) for (const s of f.samples) a.set(key(s.name, s.labels), s.value);
  const b = new Map<string, number>();
  for (const f of theirs) {
    for (const s of f.samples) {
      b.set(key(s.name, s.labels), typeof s.value === 'number' ? s.value : parseValue(s.value, s.name));
    }
  }
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort(), 'same samples');
  for (const [k, v] of a) assert.ok(Object.is(v, b.get(k)) || v === b.get(k), `${k}: ${v} vs ${b.get(k)}`);
}
