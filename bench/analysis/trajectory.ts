/**
 * BBN's training trajectory at one run length beside another (the regime study at `--epochs N`
 * against its 12-epoch runs, docs/analysis.md): whether the re-balancing branch gets trained. The
 * cumulative schedule gives the re-balancing branch the weight 1 − α and the paper's schedule
 * shape puts most of that weight after the lr decays, so how much it learns depends on the length:
 * the "re-balancing exposure" Σₑ (lrₑ / lr₀)(1 − αₑ) counts its training in epochs at full lr (the
 * conventional branch's is Σₑ (lrₑ / lr₀) αₑ). Beside it, the per-epoch training loss (does it
 * still rise once α falls?) and the classifier norms of the two branches (W_c, W_r).
 *
 * The loss has a floor that moves with α: BBN scores one logit vector z per pair of images (x_c
 * from the uniform sampler, x_r from the reversed one) with α·CE(z, y_c) + (1 − α)·CE(z, y_r), and
 * when y_c ≠ y_r no z does better than the binary entropy H(α) = −α ln α − (1−α) ln(1−α) (the
 * minimum of −α ln p − (1−α) ln q over p + q ≤ 1). So the expected loss is at least
 * P(y_c ≠ y_r)·H(α), which rises to ln 2 at α = 0.5 and falls again; how far the loss stays above
 * that floor says how well the two branches fit their batches.
 * Everything is computed from the runs' recorded per-epoch α, lr and loss and final norms.
 */
import type { JobResult } from './jobs.ts';
import { epochsOf, scheduleOf } from './jobs.ts';
import { mean, meanSdCell, sd } from './stats.ts';

/** The runs of one method, IR and length, and their per-epoch mean loss. */
interface Track {
  readonly epochs: number;
  readonly runs: readonly JobResult[];
  readonly loss: number[];
  /** BBN's loss floor P(y_c ≠ y_r)·H(α) per epoch (0 for single-branch methods). */
  readonly floor: number[];
}

function track(results: readonly JobResult[], ir: number, method: string): Track | null {
  const runs = results.filter((r) => r.job.ir === ir && r.job.method === method);
  if (runs.length === 0) return null;
  const epochs = epochsOf(runs[0].job);
  const loss = Array.from({ length: epochs }, (_, e) => mean(runs.map((r) => r.epochs[e].trainLoss)));
  const pd = pDiffer(runs[0].trainCounts);
  const floor = runs[0].epochs.map((e) => (e.alpha === null ? 0 : lossFloor(e.alpha, pd)));
  return { epochs, runs, loss, floor };
}

/** Σₑ (lrₑ / lr₀)·w(αₑ) of one run: training at full lr, in epochs, weighted by a branch's share. */
function exposure(r: JobResult, share: (alpha: number) => number): number {
  const lr0 = Math.max(...r.epochs.map((e) => e.lr));
  return r.epochs.reduce((a, e) => a + (e.lr / lr0) * share(e.alpha ?? 1), 0);
}

const f2 = (x: number) => x.toFixed(2);

/** P(y_c ≠ y_r): the uniform sampler draws class c with p_c ∝ n_c, the reversed one with q_c ∝ 1/n_c. */
export function pDiffer(counts: readonly number[]): number {
  const n = counts.reduce((a, b) => a + b, 0);
  const w = counts.reduce((a, c) => a + 1 / c, 0);
  return 1 - counts.reduce((a, c) => a + (c / n) * (1 / c / w), 0);
}

/** The lower bound of BBN's expected training loss at α: P(y_c ≠ y_r)·H(α). */
export function lossFloor(alpha: number, pDiff: number): number {
  const h = (x: number) => (x > 0 ? -x * Math.log(x) : 0);
  return pDiff * (h(alpha) + h(1 - alpha));
}

/** Per-class norm ratio class 9 / class 0 (tail / head at MNIST-LT) and the mean norm of a classifier. */
function normStats(runs: readonly JobResult[], pick: (r: JobResult) => number[] | undefined) {
  const ns = runs.map(pick).filter((n): n is number[] => !!n);
  return {
    mean: meanSdCell(
      ns.map((n) => mean(n)),
      2,
    ),
    ratio: meanSdCell(
      ns.map((n) => n[n.length - 1] / n[0]),
      2,
    ),
    cv: meanSdCell(
      ns.map((n) => (sd(n) * Math.sqrt((n.length - 1) / n.length)) / mean(n)),
      2,
    ),
  };
}

/**
 * The trajectory tables (markdown lines), their data, and a Vega-Lite line chart of the mean
 * training loss of BBN and CE against the fraction of training, one line per length, at IR 100.
 */
export function trajectorySection(results: readonly JobResult[], reference: readonly JobResult[]) {
  const lines: string[] = [];
  const rows: unknown[] = [];
  const values: { series: string; fraction: number; epoch: number; loss: number }[] = [];
  for (const ir of [100, 10]) {
    const tracksOf = (rs: readonly JobResult[]) => ({ bbn: track(rs, ir, 'bbn'), ce: track(rs, ir, 'ce') });
    const here = tracksOf(results);
    // Only where the runs of this length have BBN at this IR (the reference alone is in its own section).
    if (here.bbn === null) continue;
    const tracks = [tracksOf(reference), here].filter(
      (t): t is { bbn: Track; ce: Track | null } => t.bbn !== null,
    );
    lines.push(
      `**BBN's trajectory, IR ${ir}** (mean over the runs; loss is the epoch's mean training loss, the α-weighted sum of both branches' cross-entropies)`,
      '',
      '| epochs | BBN runs | re-balancing exposure Σ (lr/lr₀)(1−α) | conventional exposure Σ (lr/lr₀)α | first epoch with α ≤ 0.5 | BBN loss: epoch 1 / lowest at full lr (at epoch) / last full-lr epoch / first α ≤ 0.5 / last | its floor P(y_c≠y_r)·H(α) at those epochs | BBN loss above the floor: least (at epoch) / last | CE loss, last (runs) |',
      '|---|---|---|---|---|---|---|---|---|',
    );
    for (const { bbn, ce } of tracks) {
      const s = scheduleOf(bbn.epochs);
      // The lowest loss while the lr is full (before the first decay): the loss rises from it as α falls.
      const full = bbn.loss.slice(0, s.milestones[0]);
      const low = full.indexOf(Math.min(...full));
      const marks = [1, low + 1, s.milestones[0], s.alphaHalfEpoch, bbn.epochs];
      const excess = bbn.loss.map((l, e) => l - bbn.floor[e]);
      const least = excess.indexOf(Math.min(...excess));
      // The same for every seed (the schedule is fixed): one number.
      const rb = mean(bbn.runs.map((r) => exposure(r, (a) => 1 - a)));
      const cb = mean(bbn.runs.map((r) => exposure(r, (a) => a)));
      lines.push(
        `| ${bbn.epochs} | ${bbn.runs.length} | ${f2(rb)} | ${cb.toFixed(1)} | ${s.alphaHalfEpoch} (${((100 * s.alphaHalfEpoch) / bbn.epochs).toFixed(0)} %) | ` +
          `${marks.map((e, i) => `${f2(bbn.loss[e - 1])}${i === 1 ? ` (${e})` : ''}`).join(' / ')} | ` +
          `${marks.map((e) => f2(bbn.floor[e - 1])).join(' / ')} | ` +
          `${f2(excess[least])} (${least + 1}) / ${f2(excess[bbn.epochs - 1])} | ${ce ? `${f2(ce.loss[ce.epochs - 1])} (${ce.runs.length})` : '-'} |`,
      );
      rows.push({
        ir,
        epochs: bbn.epochs,
        bbnRuns: bbn.runs.map((r) => r.id),
        rebalanceExposure: rb,
        conventionalExposure: cb,
        bbnLoss: bbn.loss,
        bbnLossFloor: bbn.floor,
        ceLoss: ce?.loss ?? null,
      });
      if (ir === 100) {
        for (const [name, t] of [
          ['BBN', bbn],
          ['CE', ce],
        ] as const) {
          if (!t) continue;
          for (const [e, loss] of t.loss.entries()) {
            values.push({
              series: `${name}, ${t.epochs} epochs`,
              fraction: (e + 1) / t.epochs,
              epoch: e + 1,
              loss,
            });
          }
        }
        // The floor of the longest run (the shorter's is the same curve, sampled more coarsely).
        if (bbn === tracks.at(-1)?.bbn) {
          for (const [e, loss] of bbn.floor.entries()) {
            values.push({
              series: 'BBN: least possible loss',
              fraction: (e + 1) / bbn.epochs,
              epoch: e + 1,
              loss,
            });
          }
        }
      }
    }
    lines.push(
      '',
      `**BBN's classifier norms, IR ${ir}** (L2 norm of each class's weight vector; class 0 has the most training digits, class 9 the fewest)`,
      '',
      '| epochs | runs | W_c (conventional): mean norm | W_c class 9 / class 0 | W_r (re-balancing): mean norm | W_r class 9 / class 0 | whole W: σ / mean over classes |',
      '|---|---|---|---|---|---|---|',
    );
    for (const { bbn } of tracks) {
      const c = normStats(bbn.runs, (r) => r.final.weightNorms.cb);
      const rr = normStats(bbn.runs, (r) => r.final.weightNorms.rb);
      const all = normStats(bbn.runs, (r) => r.final.weightNorms.all);
      lines.push(
        `| ${bbn.epochs} | ${bbn.runs.length} | ${c.mean} | ${c.ratio} | ${rr.mean} | ${rr.ratio} | ${all.cv} |`,
      );
    }
    lines.push('');
  }
  const spec = {
    width: 560,
    height: 220,
    title: {
      text: 'IR 100: mean training loss over the run',
      subtitle:
        'x: epoch / epochs (lr ×0.1 after 60 % and 80 %); dashed: BBN’s floor P(y_c ≠ y_r)·H(α) at that epoch’s α',
    },
    data: { values },
    mark: { type: 'line' as const, strokeWidth: 1.5 },
    encoding: {
      x: {
        field: 'fraction',
        type: 'quantitative' as const,
        title: 'fraction of training',
        scale: { domain: [0, 1] },
      },
      y: { field: 'loss', type: 'quantitative' as const, title: 'training loss (mean over seeds)' },
      color: {
        field: 'series',
        type: 'nominal' as const,
        title: null,
        legend: { orient: 'bottom' as const, columns: 3 },
      },
      strokeDash: {
        condition: { test: "indexof(datum.series, 'least') >= 0", value: [4, 3] },
        value: [1, 0],
      },
    },
  };
  return { lines, rows, spec };
}
