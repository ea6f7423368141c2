import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { incompleteBeta, pctCell, sd, tTwoSided, welch } from '../../bench/analysis/stats.ts';
import { lossFloor, pDiffer } from '../../bench/analysis/trajectory.ts';

const close = (a: number, b: number, tol: number) => assert.ok(Math.abs(a - b) < tol, `${a} vs ${b}`);

describe('analysis statistics', () => {
  it('Student t p-values match tables', () => {
    // scipy.stats.t.sf(2, 10) * 2, t.sf(2.776445, 4) * 2 (the 95 % critical value), t.sf(1, 1) * 2.
    close(tTwoSided(2, 10), 0.0733880347707404, 1e-12);
    close(tTwoSided(2.776445105, 4), 0.05, 1e-8);
    close(tTwoSided(1, 1), 0.5, 1e-12);
    close(incompleteBeta(0.5, 2, 2), 0.5, 1e-14);
  });

  it("Welch's test: difference, Welch-Satterthwaite df and p", () => {
    const w = welch([1, 2, 3], [4, 5, 6])!;
    assert.equal(w.diff, -3);
    close(w.t, -3 / Math.sqrt(2 / 3), 1e-12);
    close(w.df, 4, 1e-12);
    close(w.p, 0.021311641128756775, 1e-9); // scipy.stats.ttest_ind(..., equal_var=False)
    const u = welch([1, 2, 3.5], [4, 5, 9])!;
    close(u.df, 2.860725360657948, 1e-9);
    assert.equal(welch([1], [2, 3]), null);
  });

  it('cells are mean ± sample sd in percent, skipping nulls', () => {
    close(sd([1, 2, 3]), 1, 1e-15);
    assert.equal(pctCell([0.5, null, 0.7]), '60.0 ± 14.1');
    assert.equal(pctCell([null]), '-');
    assert.equal(pctCell([0.25, null]), '25.0');
  });

  it("BBN's loss floor: P(y_c != y_r) of the uniform and reversed samplers times H(alpha)", () => {
    // Two equal classes: both samplers draw each with 1/2, so the labels differ half the time.
    close(pDiffer([5, 5]), 0.5, 1e-15);
    // 3:1 — uniform draws class 0 with 3/4, reversed with 1/4: P(same) = 3/16 + 3/16.
    close(pDiffer([3, 1]), 1 - 6 / 16, 1e-15);
    close(lossFloor(0.5, 1), Math.LN2, 1e-15);
    close(lossFloor(0.25, 0.5), 0.5 * -(0.25 * Math.log(0.25) + 0.75 * Math.log(0.75)), 1e-15);
    assert.equal(lossFloor(1, 1), 0);
  });
});
