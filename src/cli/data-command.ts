/**
 * `bbn data --config FILE [KEY=VALUE …]`: the long-tail profile of a run's data before any training:
 * sizes, class counts from head to tail, imbalance ratio, many/medium/few split, and the class
 * probabilities of the reversed and balanced samplers. `--json` prints the same as one JSON object.
 */
import type { Command } from 'commander';
import type { RunConfig } from '../core/config.ts';
import { classCounts, imbalanceRatioOf, type ShotGroup, shotGroups } from '../core/profiles.ts';
import { classProbabilities } from '../core/samplers.ts';
import type { LoadedData } from '../data/api.ts';
import { loadRunConfig } from './config-file.ts';

/** One class of the summary. */
export interface ClassRow {
  readonly id: number;
  readonly name: string;
  readonly train: number;
  readonly test: number;
  readonly shot: ShotGroup;
  /** Probability of the class under the reversed sampler (BBN's re-balancing branch). */
  readonly reversed: number;
  /** Probability under the class-balanced sampler, 1/C. */
  readonly balanced: number;
}

/** What `bbn data` reports (and prints as JSON with `--json`). */
export interface DataSummary {
  readonly kind: RunConfig['dataset']['kind'];
  readonly train: string;
  readonly test: string;
  readonly numClasses: number;
  readonly trainSize: number;
  readonly testSize: number;
  readonly profile: string;
  readonly imbalanceRatio: number;
  readonly thresholds: { readonly many: number; readonly few: number };
  readonly shots: Record<ShotGroup, number>;
  /** Classes from head to tail (most training images first; ties by class id). */
  readonly classes: readonly ClassRow[];
}

/** Builds the summary of loaded data under the config's shot thresholds. */
export function summarizeData(cfg: RunConfig, data: LoadedData): DataSummary {
  const counts = data.trainCounts;
  const testCounts = classCounts(data.test.labels, data.test.numClasses);
  const many = cfg.eval.manyThreshold;
  const few = cfg.eval.fewThreshold;
  const groups = shotGroups(counts, many, few);
  const reversed = classProbabilities('reversed', counts);
  const balanced = classProbabilities('balanced', counts);
  const names = data.train.classNames;
  const classes = counts
    .map((n, id) => ({
      id,
      name: names?.[id] ?? String(id),
      train: n,
      test: testCounts[id],
      shot: groups[id],
      reversed: reversed[id],
      balanced: balanced[id],
    }))
    .sort((a, b) => b.train - a.train || a.id - b.id);
  const shots: Record<ShotGroup, number> = { many: 0, medium: 0, few: 0 };
  for (const g of groups) shots[g]++;
  return {
    kind: cfg.dataset.kind,
    train: data.train.name,
    test: data.test.name,
    numClasses: data.train.numClasses,
    trainSize: data.train.size,
    testSize: data.test.size,
    profile: data.profile,
    imbalanceRatio: imbalanceRatioOf(counts),
    thresholds: { many, few },
    shots,
    classes,
  };
}

const int = (n: number) => n.toLocaleString('en-US');

/** Classes shown in full up to this many; beyond, the head and tail `EDGE` rows each. */
const FULL_TABLE = 50;
const EDGE = 20;

/** The summary as a readable report; `all` prints every class even for thousands of classes. */
export function formatDataSummary(s: DataSummary, all = false): string {
  const head = s.classes[0].train;
  const tail = s.classes[s.classes.length - 1].train;
  const lines = [
    `data set         ${s.kind}: train ${s.train}, test ${s.test}`,
    `classes          ${s.numClasses}`,
    `train images     ${int(s.trainSize)}`,
    `test images      ${int(s.testSize)}`,
    `profile          ${s.profile}`,
    `imbalance ratio  ${s.imbalanceRatio.toFixed(2)} (head ${int(head)} / tail ${int(tail)})`,
    `shot groups      many (> ${s.thresholds.many}): ${s.shots.many} classes, medium: ${s.shots.medium}, ` +
      `few (< ${s.thresholds.few}): ${s.shots.few}`,
    '',
  ];
  const header = ['rank', 'class', 'name', 'train', 'share', 'shot', 'test', 'P reversed', 'P balanced'];
  const rows = s.classes.map((c, r) => [
    String(r + 1),
    String(c.id),
    c.name,
    int(c.train),
    `${((100 * c.train) / s.trainSize).toFixed(2)}%`,
    c.shot,
    int(c.test),
    c.reversed.toFixed(6),
    c.balanced.toFixed(6),
  ]);
  const cut = !all && rows.length > FULL_TABLE;
  const shown = cut ? [...rows.slice(0, EDGE), ...rows.slice(-EDGE)] : rows;
  const widths = header.map((h, i) => Math.max(h.length, ...shown.map((r) => r[i].length)));
  const left = new Set([2, 5]); // text columns
  const fmt = (r: string[]) =>
    r
      .map((v, i) => (left.has(i) ? v.padEnd(widths[i]) : v.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  lines.push(fmt(header), ...shown.slice(0, cut ? EDGE : shown.length).map(fmt));
  if (cut) {
    lines.push(
      `${'…'.padStart(widths[0])}  (${rows.length - 2 * EDGE} more classes; --all lists every class)`,
    );
    lines.push(...shown.slice(EDGE).map(fmt));
  }
  return `${lines.join('\n')}\n`;
}

/** Registers `bbn data` on the program. */
export function registerDataCommand(program: Command): void {
  program
    .command('data')
    .description(
      'show the data set of a config before training: sizes, class counts head to tail, imbalance ratio, ' +
        'many/medium/few split and sampler probabilities',
    )
    .requiredOption('--config <file>', 'YAML run config')
    .option('--json', 'print one JSON object instead of the table')
    .option('--all', 'list every class (by default the head and tail 20 of sets with over 50 classes)')
    .argument('[overrides...]', 'KEY=VALUE config overrides, e.g. dataset.imbalanceRatio=50')
    .action(async (overrides: string[], opts: { config: string; json?: boolean; all?: boolean }) => {
      const cfg = loadRunConfig(opts.config, overrides);
      const { loadData } = await import('../data/load.ts');
      const summary = summarizeData(cfg, await loadData(cfg.dataset));
      process.stdout.write(
        opts.json ? `${JSON.stringify(summary, null, 2)}\n` : formatDataSummary(summary, opts.all),
      );
    });
}
