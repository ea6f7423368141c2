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
"$PY" bench/parity/table.py "$R"/*.jsonl --out "$R/table.md"
