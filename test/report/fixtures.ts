/** Synthetic finished run directories with every optional summary field, computed from formulas (no randomness). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface Row {
  epoch: number;
  testTop1: number;
  perClass: number[];
  many: number | null;
  medium: number | null;
  few: number | null;
  [k: string]: unknown;
}

/** Writes a run dir of `epochs` epochs and `numClasses` long-tailed classes; `skill` shifts accuracy. */
export function writeSyntheticRun(
  dir: string,
  opts: { name: string; method: string; epochs?: number; numClasses?: number; skill?: number; bbn?: boolean },
): void {
  const epochs = opts.epochs ?? 12;
  const C = opts.numClasses ?? 10;
  const skill = opts.skill ?? 0;
  const bbn = opts.bbn ?? true;
  // Class ids deliberately NOT in head-to-tail order, so the report must sort them.
  const trainCounts = Array.from({ length: C }, (_, c) =>
    Math.round(500 * 0.01 ** (((c * 3) % C) / (C - 1))),
  );
  mkdirSync(dir, { recursive: true });
  const rows: Row[] = [];
  for (let e = 1; e <= epochs; e++) {
    const progress = e / epochs;
    const perClass = trainCounts.map((n) =>
      Math.min(1, (0.3 + 0.6 * progress) * (0.5 + Math.log10(n) / 5) + skill),
    );
    const mean = (f: (n: number) => boolean) => {
      const xs = perClass.filter((_, c) => f(trainCounts[c]));
      return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
    };
    rows.push({
      epoch: e,
      stage: 1,
      alpha: bbn ? 1 - progress ** 2 : null,
      lr: e <= 2 ? 0.1 * (e / 2) : 0.1 * 0.5 ** Math.floor(e / 5),
      trainLoss: 2.3 * Math.exp(-2 * progress) + 0.1,
      trainAccuracy: Math.min(1, 0.2 + 0.75 * progress + skill),
      testTop1: perClass.reduce((a, b) => a + b, 0) / C,
      perClass,
      many: mean((n) => n > 100),
      medium: mean((n) => n <= 100 && n >= 20),
      few: mean((n) => n < 20),
      seconds: 10,
      stepsPerSecond: 5,
    });
  }
  writeFileSync(join(dir, 'metrics.jsonl'), rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
  const last = rows.at(-1)!;
  const pick = (r: Row) => ({
    epoch: r.epoch,
    top1: r.testTop1,
    top1Error: 100 * (1 - r.testTop1),
    many: r.many,
    medium: r.medium,
    few: r.few,
  });
  const confusion = trainCounts.map((_, t) =>
    trainCounts.map((__, p) => {
      const right = Math.round(100 * last.perClass[t]);
      if (p === t) return right;
      // Errors lean toward the largest class, as a long-tailed classifier's do.
      return trainCounts[p] === 500 ? 100 - right - (C - 2) : 1;
    }),
  );
  const norms = (scale: number, tilt: number) => {
    const v = trainCounts.map((n) => scale * (1 + tilt * Math.log10(n)));
    const mean = v.reduce((a, b) => a + b, 0) / C;
    return { norms: v, mean, std: Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / C) };
  };
  const summary = {
    name: opts.name,
    method: opts.method,
    epochs,
    last: pick(last),
    best: pick(rows.reduce((b, r) => (r.testTop1 > b.testTop1 ? r : b))),
    seconds: 120,
    backend: 'cpu',
    trainCounts,
    confusion,
    weightNorms: bbn
      ? { all: norms(1.4, 0.05), cb: norms(1, 0.15), rb: norms(1, -0.05) }
      : { all: norms(1.2, 0.3) },
  };
  writeFileSync(join(dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
}
