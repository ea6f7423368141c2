#!/usr/bin/env bash
# The parity bench of docs/parity.md, end to end (hours of CPU; never in CI):
#   npm run bench:parity                       # seeds 0-9, ResNet-14 width 8, 6 epochs
#   SEEDS=0-19 EPOCHS=12 MILESTONES=8,11 npm run bench:parity
#   DEPTH=32 WIDTH=16 EPOCHS=12 MILESTONES=8,11 npm run bench:parity    # the size (CPU hours)
# Runs are appended to bench/parity/results/*.jsonl (table.py keeps the first run of a seed per
# arm): delete a file to redo it. Each line of work can be run by hand in parallel (see
# docs/parity.md for the exact commands). Every run is labelled with the derivations that drew it:
# draws (this project's initial weights and streams) and data (the MNIST-LT subsample and test
# split): sha256 (shipped) or legacy (before issue #19).
set -euo pipefail
PY=${PARITY_PYTHON:-/work/torch-venv/bin/python}
SEEDS=${SEEDS:-0-9}
EPOCHS=${EPOCHS:-6}
MILESTONES=${MILESTONES:-4,5}
DEPTH=${DEPTH:-14}
WIDTH=${WIDTH:-8}
SIZE=(--depth "$DEPTH" --width "$WIDTH" --epochs "$EPOCHS" --milestones "$MILESTONES")
DATA=${PARITY_DATA:-/tmp/parity/d$DEPTH-w$WIDTH-e$EPOCHS}
R=bench/parity/results
mkdir -p "$R"
OURS=(--init ours --uniform ours --reversed ours)
# 1. trajectory parity with the shipped derivation: this project, the mirror on its own draws,
#    the mirror on this project's draws, one-ingredient swaps.
node --import tsx bench/parity/ours.ts export --out "$DATA" --seeds "$SEEDS" "${SIZE[@]}"
nice -n 10 node --import tsx bench/parity/ours.ts train --out "$R/ours.jsonl" --seeds "$SEEDS" "${SIZE[@]}"
nice -n 10 "$PY" bench/parity/bbn_ref.py --data "$DATA" --out "$R/torch-own.jsonl" --seeds "$SEEDS" \
  --label ",draws=sha256,data=sha256"
nice -n 10 "$PY" bench/parity/bbn_ref.py --data "$DATA" --out "$R/torch-crossed.jsonl" --seeds "$SEEDS" --methods bbn \
  "${OURS[@]}" --label ",draws=sha256,data=sha256"
for v in "--init ours" "--uniform ours" "--reversed ours"; do
  nice -n 10 "$PY" bench/parity/bbn_ref.py --data "$DATA" --out "$R/torch-swap.jsonl" --seeds "$SEEDS" --methods bbn $v \
    --label ",draws=sha256,data=sha256"
done
# 2. the derivation comparison with the data fixed (legacy subsample), through the mirror on
#    exported draws, on seeds of its own: legacy draws against SHA-256 draws.
MORE=${MORE_SEEDS:-100-139}
for d in legacy sha256; do
  node --import tsx bench/parity/ours.ts export --out "$DATA-$d-draws" --seeds "$MORE" --derive "$d" --data-derive legacy \
    "${SIZE[@]}"
  nice -n 10 "$PY" bench/parity/bbn_ref.py --data "$DATA-$d-draws" --out "$R/torch-derive-fixed-data.jsonl" --seeds "$MORE" \
    --methods bbn "${OURS[@]}" --label ",draws=$d,data=legacy"
done
"$PY" bench/parity/table.py "$R"/*.jsonl --size "$DEPTH,$WIDTH,$EPOCHS" --out "$R/table-d$DEPTH-w$WIDTH-e$EPOCHS.md"
npx biome format --write "$R/table-d$DEPTH-w$WIDTH-e$EPOCHS.md" >/dev/null # the repository's formatter owns bench/**
