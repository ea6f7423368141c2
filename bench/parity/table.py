"""Tables and tests of the parity bench (docs/parity.md) from the JSON lines of ours.ts / bbn_ref.py.

Every run is labelled by what drew it: `draws` (the seed/key derivation of this project's initial
weights and streams, where the run uses any of them) and `data` (the derivation that drew the
MNIST-LT subsample and test split): `sha256` (shipped since issue #19) or `legacy` (before).
Result lines written before the labels existed are mapped by `canon` below (the bench's old
`--derive sha256` swapped the derivation before loading the data, so those runs have SHA-256 draws
*and* SHA-256 data). Arms are named sets of runs (one run per seed: the first line wins); the
comparisons test the final top-1 and shot groups: Welch's t-test and Mann-Whitney's U of the
means, Levene's test (median-centred, Brown-Forsythe) of the spreads.

usage: python bench/parity/table.py bench/parity/results/*.jsonl [--size 14,8,6] [--out bench/parity/results/table.md]
(--size: depth, width, epochs of the runs to tabulate; runs of other sizes are left out.)
"""

import argparse
import json
import warnings

import numpy as np
from scipy import stats

METRICS = ["top1", "many", "medium", "few"]
OWN = "init=own,uniform=own,reversed=own"
ALL_OURS = "init=ours,uniform=ours,reversed=ours"

# Old suffixes of the mirror's variant (bbn_ref.py --label) -> (draws, data).
OLD_SUFFIX = {
    "": ("legacy", "legacy"),
    ",derive=sha256": ("sha256", "sha256"),
    ",derive=shipped,data=shipped": ("legacy", "legacy"),
    ",derive=sha256,data=shipped": ("sha256", "legacy"),
    ",derive=shipped,data=sha256": ("legacy", "sha256"),
    ",data=sha256": ("legacy", "sha256"),
}
# Old variants of this project's runs (ours.ts) -> (draws, data).
OLD_OURS = {"shipped": ("legacy", "legacy"), "sha256": ("sha256", "sha256"), "sha256,data=sha256": ("sha256", "sha256")}


def canon(r):
    """(draws, data, mirror ingredients or None) of a result line."""
    v = r["variant"]
    if r["impl"] == "ours":
        if v.startswith("draws="):
            d = dict(kv.split("=") for kv in v.split(","))
            return d["draws"], d["data"], None
        return (*OLD_OURS[v], None)
    base = ",".join(v.split(",")[:3])
    suffix = v[len(base):]
    if suffix.startswith(",draws="):
        d = dict(kv.split("=") for kv in suffix[1:].split(","))
        return d["draws"], d["data"], base
    return (*OLD_SUFFIX[suffix], base)


def arm(runs, impl, method, draws=None, data=None, mirror=None, seeds=None):
    out = {}
    for r in runs:
        dr, da, mi = canon(r)
        if r["impl"] != impl or r["method"] != method or (mirror is not None and mi != mirror):
            continue
        if (draws is not None and dr != draws) or (data is not None and da != data):
            continue
        if seeds is not None and not (seeds[0] <= r["seed"] <= seeds[1]):
            continue
        out.setdefault(r["seed"], r)
    return out


def arms(runs):
    """The named arms of docs/parity.md."""
    a = {}
    for m in ("bbn", "ce"):
        M = m.upper()
        a[f"{M} ours, shipped (SHA-256 draws and data)"] = arm(runs, "ours", m, "sha256", "sha256")
        a[f"{M} mirror, own draws, shipped data (SHA-256)"] = arm(runs, "torch", m, data="sha256", mirror=OWN)
        a[f"{M} ours, legacy draws and data"] = arm(runs, "ours", m, "legacy", "legacy")
        a[f"{M} mirror, own draws, legacy data"] = arm(runs, "torch", m, data="legacy", mirror=OWN)
    a["BBN mirror on our draws, SHA-256 draws and data, seeds 20-39"] = arm(
        runs, "torch", "bbn", "sha256", "sha256", ALL_OURS, (0, 99)
    )
    a["BBN mirror on our draws, legacy draws and data, seeds 0-39"] = arm(
        runs, "torch", "bbn", "legacy", "legacy", ALL_OURS, (0, 99)
    )
    for ing in ("init=ours,uniform=own,reversed=own", "init=own,uniform=ours,reversed=own", "init=own,uniform=own,reversed=ours"):
        a[f"BBN mirror ({ing}), legacy"] = arm(runs, "torch", "bbn", "legacy", "legacy", ing)
    a["DECISION legacy draws, legacy data, seeds 100-139"] = arm(runs, "torch", "bbn", "legacy", "legacy", ALL_OURS, (100, 199))
    a["DECISION SHA-256 draws, legacy data, seeds 100-139"] = arm(runs, "torch", "bbn", "sha256", "legacy", ALL_OURS, (100, 199))
    a["DATA legacy draws, SHA-256 data, seeds 100-119"] = arm(runs, "torch", "bbn", "legacy", "sha256", ALL_OURS, (100, 199))
    # Pooled (the earlier page's finding 5): this project's run of a seed, else the mirror's run on
    # that seed's exported draws (the two agree run by run), seeds 0-39.
    for dd in ("legacy", "sha256"):
        pool = dict(arm(runs, "torch", "bbn", dd, dd, ALL_OURS, (0, 99)))
        pool.update(arm(runs, "ours", "bbn", dd, dd))
        a[f"BBN pooled seeds 0-39, {dd} draws and data"] = pool
    # Every legacy-draws, legacy-data BBN run (pooled 0-39 and the fresh 100-139): the largest
    # control for the SHA-256 draws on the same data.
    a["BBN legacy draws and data, all seeds (pooled 0-39 + 100-139)"] = {
        **a["BBN pooled seeds 0-39, legacy draws and data"],
        **a.get("DECISION legacy draws, legacy data, seeds 100-139", {}),
    }
    return {k: v for k, v in a.items() if v}


COMPARISONS = [
    ("derivation, data fixed (legacy), mirror on our draws, fresh seeds",
     "DECISION SHA-256 draws, legacy data, seeds 100-139", "DECISION legacy draws, legacy data, seeds 100-139"),
    ("derivation, data fixed (legacy): fresh SHA-256 draws vs every legacy run",
     "DECISION SHA-256 draws, legacy data, seeds 100-139", "BBN legacy draws and data, all seeds (pooled 0-39 + 100-139)"),
    ("data subsample, SHA-256 draws: SHA-256 data (seeds 0-39) vs legacy data (seeds 100-139)",
     "BBN pooled seeds 0-39, sha256 draws and data", "DECISION SHA-256 draws, legacy data, seeds 100-139"),
    ("seed ranges, legacy draws and data: seeds 0-39 vs 100-139",
     "BBN pooled seeds 0-39, legacy draws and data", "DECISION legacy draws, legacy data, seeds 100-139"),
    ("data subsample, draws fixed (legacy), mirror on our draws",
     "DATA legacy draws, SHA-256 data, seeds 100-119", "DECISION legacy draws, legacy data, seeds 100-139"),
    ("earlier finding 5: SHA-256 vs legacy, draws and data both changed",
     "BBN pooled seeds 0-39, sha256 draws and data", "BBN pooled seeds 0-39, legacy draws and data"),
    ("BBN ours vs mirror, shipped", "BBN ours, shipped (SHA-256 draws and data)", "BBN mirror, own draws, shipped data (SHA-256)"),
    ("CE ours vs mirror, shipped", "CE ours, shipped (SHA-256 draws and data)", "CE mirror, own draws, shipped data (SHA-256)"),
    ("BBN ours vs mirror, legacy", "BBN ours, legacy draws and data", "BBN mirror, own draws, legacy data"),
    ("CE ours vs mirror, legacy", "CE ours, legacy draws and data", "CE mirror, own draws, legacy data"),
    ("BBN mirror own draws: SHA-256 vs legacy data", "BBN mirror, own draws, shipped data (SHA-256)", "BBN mirror, own draws, legacy data"),
    ("CE mirror own draws: SHA-256 vs legacy data", "CE mirror, own draws, shipped data (SHA-256)", "CE mirror, own draws, legacy data"),
]


def ms(xs):
    xs = [100 * x for x in xs if x is not None]
    if not xs:
        return "-"
    return f"{np.mean(xs):.1f} ± {np.std(xs, ddof=1):.1f}" if len(xs) > 1 else f"{xs[0]:.1f}"


def seed_span(g):
    s = sorted(g)
    return f"{len(s)} ({s[0]}-{s[-1]})"


def paired(out, a, b, title):
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 3:
        return
    out.append(f"\n### {title}\n")
    out.append("| metric | pairs | mean a − b (pts) | sd of the differences | paired t p | Pearson r over seeds |")
    out.append("|---|---|---|---|---|---|")
    for m in METRICS + ["loss@1", "loss@2"]:
        if m.startswith("loss@"):
            e, scale = int(m[5:]) - 1, 1
            xa = [a[s]["epochs"][e]["loss"] for s in seeds]
            xb = [b[s]["epochs"][e]["loss"] for s in seeds]
        else:
            scale = 100
            xa = [a[s]["epochs"][-1][m] for s in seeds]
            xb = [b[s]["epochs"][-1][m] for s in seeds]
        d = scale * (np.array(xa) - np.array(xb))
        t = stats.ttest_rel(xa, xb)
        r = stats.pearsonr(xa, xb)
        out.append(f"| {m} | {len(seeds)} | {d.mean():+.2f} | {d.std(ddof=1):.2f} | {t.pvalue:.2f} | {r.statistic:.2f} |")


def per_seed(out, groups, title, names):
    cols = [(n, groups[n]) for n in names if n in groups]
    seeds = sorted(set().union(*(g for _, g in cols)))
    cell = lambda g, s: f"{100 * g[s]['epochs'][-1]['top1']:.1f} ({g[s]['epochs'][1]['loss']:.2f})" if s in g else "-"
    out.append(f"\n### {title}\n")
    out.append("| seed | " + " | ".join(n for n, _ in cols) + " |")
    out.append("|---|" + "---|" * len(cols))
    for s in seeds:
        out.append(f"| {s} | " + " | ".join(cell(g, s) for _, g in cols) + " |")


def main():
    warnings.simplefilter("ignore", RuntimeWarning)  # Levene on two all-zero groups (CE few-shot)
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+")
    p.add_argument("--out")
    p.add_argument("--size", default="14,8,6")
    args = p.parse_args()
    depth, width, epochs = map(int, args.size.split(","))
    size = {"depth": depth, "width": width, "epochs": epochs}
    runs = [json.loads(line) for f in args.files for line in open(f) if line.strip()]
    runs = [r for r in runs if r["size"] == size]
    groups = arms(runs)
    out = ["### Final epoch (mean ± sample sd over seeds, %)\n"]
    out.append("| arm | seeds | top-1 | many | medium | few | CPU s / run |")
    out.append("|---|---|---|---|---|---|---|")
    for name, g in groups.items():
        last = [r["epochs"][-1] for r in g.values()]
        cpu = np.mean([r["cpuSeconds"] for r in g.values()])
        cells = " | ".join(ms([l[m] for l in last]) for m in METRICS)
        out.append(f"| {name} | {seed_span(g)} | {cells} | {cpu:.0f} |")
    out.append("\n### Per epoch (mean over seeds: train loss; top-1 / many / medium / few %)\n")
    n_ep = max(len(r["epochs"]) for g in groups.values() for r in g.values())
    out.append("| arm | " + " | ".join(f"epoch {e + 1}" for e in range(n_ep)) + " |")
    out.append("|---|" + "---|" * n_ep)
    for name, g in groups.items():
        cells = []
        for e in range(n_ep):
            rows = [r["epochs"][e] for r in g.values() if len(r["epochs"]) > e]
            mean = lambda m: np.mean([100 * x[m] for x in rows if x[m] is not None])
            loss = np.mean([x["loss"] for x in rows])
            cells.append(f"{loss:.2f}; {mean('top1'):.1f} / {mean('many'):.1f} / {mean('medium'):.1f} / {mean('few'):.1f}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append("\n### Tests (final epoch; Welch t and Mann-Whitney U of the means, Levene/Brown-Forsythe of the spreads)\n")
    out.append("| comparison (a vs b) | metric | n a / n b | mean a − b (pts) | Welch p | Mann-Whitney p | sd a / sd b | Levene p |")
    out.append("|---|---|---|---|---|---|---|---|")
    for label, a, b in COMPARISONS:
        if a not in groups or b not in groups:
            continue
        for m in METRICS:
            xa = [100 * r["epochs"][-1][m] for r in groups[a].values() if r["epochs"][-1][m] is not None]
            xb = [100 * r["epochs"][-1][m] for r in groups[b].values() if r["epochs"][-1][m] is not None]
            if len(xa) < 2 or len(xb) < 2:
                continue
            t = stats.ttest_ind(xa, xb, equal_var=False)
            u = stats.mannwhitneyu(xa, xb) if np.ptp(xa + xb) > 0 else None
            lev = stats.levene(xa, xb, center="median")
            out.append(
                f"| {label} | {m} | {len(xa)} / {len(xb)} | {np.mean(xa) - np.mean(xb):+.1f} | {t.pvalue:.3f} | "
                f"{u.pvalue if u else float('nan'):.3f} | {np.std(xa, ddof=1):.1f} / {np.std(xb, ddof=1):.1f} | {lev.pvalue:.2f} |"
            )
    paired(
        out,
        groups.get("BBN ours, legacy draws and data", {}),
        arm(runs, "torch", "bbn", "legacy", "legacy", ALL_OURS),
        "Same draws, two implementations (paired by seed; a = this project, b = the mirror on this project's draws; legacy)",
    )
    paired(
        out,
        groups.get("DATA legacy draws, SHA-256 data, seeds 100-119", {}),
        groups.get("DECISION legacy draws, legacy data, seeds 100-139", {}),
        "Same draws, two data subsamples (paired by seed; a = SHA-256 data, b = legacy data; the mirror on our legacy draws)",
    )
    per_seed(
        out,
        groups,
        "Per seed, BBN final top-1 % (epoch-2 train loss)",
        [
            "BBN ours, shipped (SHA-256 draws and data)",
            "BBN mirror, own draws, shipped data (SHA-256)",
            "BBN mirror on our draws, SHA-256 draws and data, seeds 20-39",
            "BBN ours, legacy draws and data",
            "BBN mirror on our draws, legacy draws and data, seeds 0-39",
            "BBN mirror, own draws, legacy data",
            "DECISION legacy draws, legacy data, seeds 100-139",
            "DECISION SHA-256 draws, legacy data, seeds 100-139",
            "DATA legacy draws, SHA-256 data, seeds 100-119",
        ],
    )
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        open(args.out, "w").write(text)


if __name__ == "__main__":
    main()
