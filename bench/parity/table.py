"""Tables and tests of the parity bench (docs/parity.md) from the JSON lines of ours.ts / bbn_ref.py.

Groups runs by (implementation, variant, method); one run per seed (the first line wins). Prints:
final-epoch top-1 / many / medium / few (mean ± sample sd over seeds), the per-epoch means, and for
each comparison Welch's t-test of the means and Levene's test (median-centred, Brown-Forsythe) of
the spreads of the final top-1 (and of each shot group).

usage: python bench/parity/table.py bench/parity/results/*.jsonl [--out bench/parity/results/table.md]
"""

import argparse
import json

import warnings

import numpy as np
from scipy import stats

METRICS = ["top1", "many", "medium", "few"]
COMPARISONS = [
    # (label, group a, group b)
    ("BBN: ours vs PyTorch mirror", ("ours", "shipped", "bbn"), ("torch", "init=own,uniform=own,reversed=own", "bbn")),
    ("CE: ours vs PyTorch mirror", ("ours", "shipped", "ce"), ("torch", "init=own,uniform=own,reversed=own", "ce")),
    ("BBN ours: shipped vs SHA-256 derivation", ("ours", "shipped", "bbn"), ("ours", "sha256", "bbn")),
    (
        "BBN mirror: own draws vs this project's draws (weights + both streams)",
        ("torch", "init=own,uniform=own,reversed=own", "bbn"),
        ("torch", "init=ours,uniform=ours,reversed=ours", "bbn"),
    ),
    (
        "BBN mirror on this project's draws: shipped vs SHA-256 derivation",
        ("torch", "init=ours,uniform=ours,reversed=ours", "bbn"),
        ("torch", "init=ours,uniform=ours,reversed=ours,derive=sha256", "bbn"),
    ),
    ("BBN pooled: shipped vs SHA-256 derivation", ("pooled", "shipped", "bbn"), ("pooled", "sha256", "bbn")),
    ("BBN pooled shipped vs PyTorch mirror's own draws", ("pooled", "shipped", "bbn"), ("torch", "init=own,uniform=own,reversed=own", "bbn")),
    ("BBN pooled SHA-256 vs PyTorch mirror's own draws", ("pooled", "sha256", "bbn"), ("torch", "init=own,uniform=own,reversed=own", "bbn")),
    (
        "BBN, this project's draws: ours vs PyTorch mirror",
        ("ours", "shipped", "bbn"),
        ("torch", "init=ours,uniform=ours,reversed=ours", "bbn"),
    ),
]


def load(paths):
    groups = {}
    for p in paths:
        for line in open(p):
            if not line.strip():
                continue
            r = json.loads(line)
            key = (r["impl"], r["variant"], r["method"])
            groups.setdefault(key, {}).setdefault(r["seed"], r)
    # Pooled arms: a seed's run by this project, else the mirror's run on this project's draws of that
    # seed (the two agree run by run: see the paired table), per derivation.
    for derive, mirror in (("shipped", ""), ("sha256", ",derive=sha256")):
        pool = dict(groups.get(("torch", "init=ours,uniform=ours,reversed=ours" + mirror, "bbn"), {}))
        pool.update(groups.get(("ours", derive, "bbn"), {}))
        if pool:
            groups[("pooled", derive, "bbn")] = pool
    return groups


def ms(xs):
    xs = [100 * x for x in xs if x is not None]
    if not xs:
        return "-"
    return f"{np.mean(xs):.1f} ± {np.std(xs, ddof=1):.1f}" if len(xs) > 1 else f"{xs[0]:.1f}"


def name(key):
    impl, variant, method = key
    if impl == "pooled":
        return f"{method.upper()} pooled: ours, else the mirror on our draws ({variant} derivation)"
    return f"{method.upper()} {'ours' if impl == 'ours' else 'PyTorch mirror'} ({variant})"


def main():
    warnings.simplefilter("ignore", RuntimeWarning)  # Levene on two all-zero groups (CE few-shot)
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+")
    p.add_argument("--out")
    args = p.parse_args()
    groups = load(args.files)
    out = []
    out.append("### Final epoch (mean ± sample sd over seeds, %)\n")
    out.append("| runs | seeds | top-1 | many | medium | few | CPU s / run |")
    out.append("|---|---|---|---|---|---|---|")
    for key in sorted(groups):
        runs = list(groups[key].values())
        last = [r["epochs"][-1] for r in runs]
        cpu = np.mean([r["cpuSeconds"] for r in runs])
        cells = " | ".join(ms([l[m] for l in last]) for m in METRICS)
        out.append(f"| {name(key)} | {len(runs)} | {cells} | {cpu:.0f} |")
    out.append("\n### Per epoch (mean over seeds: train loss, top-1 / many / medium / few %)\n")
    n_ep = max(len(r["epochs"]) for g in groups.values() for r in g.values())
    out.append("| runs | " + " | ".join(f"epoch {e + 1}" for e in range(n_ep)) + " |")
    out.append("|---|" + "---|" * n_ep)
    for key in sorted(groups):
        runs = list(groups[key].values())
        cells = []
        for e in range(n_ep):
            rows = [r["epochs"][e] for r in runs if len(r["epochs"]) > e]
            mean = lambda m: np.mean([100 * x[m] for x in rows if x[m] is not None])
            loss = np.mean([x["loss"] for x in rows])
            cells.append(f"{loss:.2f}; {mean('top1'):.1f} / {mean('many'):.1f} / {mean('medium'):.1f} / {mean('few'):.1f}")
        out.append(f"| {name(key)} | " + " | ".join(cells) + " |")
    out.append("\n### Tests (final epoch; Welch t-test of the means, Levene/Brown-Forsythe of the spreads)\n")
    out.append("| comparison | metric | n a / n b | mean a − b (pts) | Welch p | sd a / sd b | Levene p |")
    out.append("|---|---|---|---|---|---|---|")
    for label, a, b in COMPARISONS:
        if a not in groups or b not in groups:
            continue
        for m in METRICS:
            xa = [100 * r["epochs"][-1][m] for r in groups[a].values() if r["epochs"][-1][m] is not None]
            xb = [100 * r["epochs"][-1][m] for r in groups[b].values() if r["epochs"][-1][m] is not None]
            if len(xa) < 2 or len(xb) < 2:
                continue
            t = stats.ttest_ind(xa, xb, equal_var=False)
            lev = stats.levene(xa, xb, center="median")
            out.append(
                f"| {label} | {m} | {len(xa)} / {len(xb)} | {np.mean(xa) - np.mean(xb):+.1f} | {t.pvalue:.2f} | "
                f"{np.std(xa, ddof=1):.1f} / {np.std(xb, ddof=1):.1f} | {lev.pvalue:.2f} |"
            )
    out.append("\n### Same draws, two implementations (paired by seed: this project vs the mirror on this project's draws)\n")
    out.append("| metric | pairs | mean ours − mirror (pts) | sd of the differences | paired t p | Pearson r over seeds |")
    out.append("|---|---|---|---|---|---|")
    a, b = ("ours", "shipped", "bbn"), ("torch", "init=ours,uniform=ours,reversed=ours", "bbn")
    if a in groups and b in groups:
        seeds = sorted(set(groups[a]) & set(groups[b]))
        for m in METRICS + ["loss@1", "loss@2"]:
            if m.startswith("loss@"):
                e = int(m[5:]) - 1
                xa = [groups[a][s]["epochs"][e]["loss"] for s in seeds]
                xb = [groups[b][s]["epochs"][e]["loss"] for s in seeds]
                scale = 1
            else:
                xa = [groups[a][s]["epochs"][-1][m] for s in seeds]
                xb = [groups[b][s]["epochs"][-1][m] for s in seeds]
                scale = 100
            if len(seeds) < 3:
                continue
            d = scale * (np.array(xa) - np.array(xb))
            t = stats.ttest_rel(xa, xb)
            r = stats.pearsonr(xa, xb)
            out.append(
                f"| {m} | {len(seeds)} | {d.mean():+.2f} | {d.std(ddof=1):.2f} | {t.pvalue:.2f} | {r.statistic:.2f} |"
            )
        out.append(
            "\nPer seed, BBN final top-1 % (epoch-2 train loss): this project; the mirror on all of this project's draws; "
            "the mirror with one of this project's ingredients (initial weights, uniform stream with its crops, reversed "
            "stream with its crops) and its own others; the mirror on its own draws; this project with the SHA-256 "
            "derivation (different draws of the same seed):\n"
        )
        g = lambda v: groups.get(("torch", v, "bbn"), {})
        cols = [
            groups[a],
            groups[b],
            g("init=ours,uniform=own,reversed=own"),
            g("init=own,uniform=ours,reversed=own"),
            g("init=own,uniform=own,reversed=ours"),
            g("init=own,uniform=own,reversed=own"),
            groups.get(("ours", "sha256", "bbn"), {}),
        ]
        f = lambda c, s: f"{100 * c[s]['epochs'][-1]['top1']:.1f} ({c[s]['epochs'][1]['loss']:.2f})" if s in c else "-"
        out.append(
            "| seed | ours | mirror, our draws | mirror, our init | mirror, our uniform | mirror, our reversed "
            "| mirror, own draws | ours, SHA-256 |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        for s in sorted(set().union(*cols)):
            out.append(f"| {s} | " + " | ".join(f(c, s) for c in cols) + " |")
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        open(args.out, "w").write(text)


if __name__ == "__main__":
    main()
