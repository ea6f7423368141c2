#!/usr/bin/env bash
# The parity bench of docs/parity.md, end to end (hours of CPU; never in CI):
#   npm run bench:parity                       # seeds 0-9, ResNet-14 width 8, 6 epochs
#   SEEDS=0-19 EPOCHS=12 MILESTONES=8,11 npm run bench:parity
# Runs are appended to bench/parity/results/*.jsonl and skipped by nothing: delete a file to redo it.
# Each line of work can be run by hand in parallel (see docs/parity.md for the exact commands).
set -euo pipefail
PY=${PARITY_PYTHON:-/work/torch-venv/bin/python}
SEEDS=${SEEDS:-0-9}
EPOCHS=${EPOCHS:-6}
MILESTONES=${MILESTONES:-4,5}
SIZE=(--epochs "$EPOCHS" --milestones "$MILESTONES")
DATA=${PARITY_DATA:-/tmp/parity/export-e$EPOCHS}
R=bench/parity/results
mkdir -p "$R"
node --import tsx bench/parity/ours.ts export --out "$DATA" --seeds "$SEEDS" "${SIZE[@]}"
nice -n 10 node --import tsx bench/parity/ours.ts train --out "$R/ours-shipped.jsonl" --seeds "$SEEDS" "${SIZE[@]}"
nice -n 10 "$PY" bench/parity/bbn_ref.py --data "$DATA" --out "$R/torch-own.jsonl" --seeds "$SEEDS"
nice -n 10 node --import tsx bench/parity/ours.ts train --out "$R/ours-sha256.jsonl" --seeds "$SEEDS" --methods bbn \
  --derive sha256 "${SIZE[@]}"
nice -n 10 "$PY" bench/parity/bbn_ref.py --data "$DATA" --out "$R/torch-crossed.jsonl" --seeds "$SEEDS" --methods bbn \
  --init ours --uniform ours --reversed ours
# one-ingredient swaps (the mirror with one of this project's ingredients)
for v in "--init ours" "--uniform ours" "--reversed ours"; do
  nice -n 10 "$PY" bench/parity/bbn_ref.py --data "$DATA" --out "$R/torch-swap.jsonl" --seeds "$SEEDS" --methods bbn $v
done
# the derivation comparison on further seeds, through the mirror on exported draws (shipped and SHA-256)
MORE=${MORE_SEEDS:-20-39}
node --import tsx bench/parity/ours.ts export --out "$DATA-more" --seeds "$MORE" "${SIZE[@]}"
node --import tsx bench/parity/ours.ts export --out "$DATA-sha" --seeds "$MORE" --derive sha256 "${SIZE[@]}"
X=(--methods bbn --init ours --uniform ours --reversed ours)
nice -n 10 "$PY" bench/parity/bbn_ref.py --data "$DATA-more" --out "$R/torch-crossed.jsonl" --seeds "$MORE" "${X[@]}"
nice -n 10 "$PY" bench/parity/bbn_ref.py --data "$DATA-sha" --out "$R/torch-crossed-sha256.jsonl" --seeds "$MORE" "${X[@]}" \
  --label ",derive=sha256"
"$PY" bench/parity/table.py "$R"/*.jsonl --out "$R/table.md"
