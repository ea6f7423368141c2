#!/usr/bin/env bash
# The project's set-up: one idempotent command for a fresh machine (and for CI).
# Installs npm dependencies from the lock file, then each native part through its own script,
# each of which checks itself and does nothing when its part already works.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --ignore-scripts --no-audit --no-fund
fi
for part in scripts/setup-*.sh; do
  [ -e "$part" ] || continue
  # The container engine and images are set up on demand only (root, apt, minutes of builds).
  [ "$part" = scripts/setup-containers.sh ] && continue
  echo "== $part"
  bash "$part" "$@"
done
echo "setup: done"
