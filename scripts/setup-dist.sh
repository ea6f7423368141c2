#!/usr/bin/env bash
# Set-up of the compiled CLI: builds dist/ from src/ (scripts/build-dist.mjs, esbuild, under a
# second) so that `bbn` starts in a fraction of a second instead of compiling TypeScript on every
# call. Idempotent: does nothing when dist/ already matches the sources. bin/bbn.mjs runs dist/ only
# while it matches; after an edit it runs the sources through tsx until `npm run build`.
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/build-dist.mjs
