#!/usr/bin/env bash
# Builds the ring's native data plane (native/ring-plane: the ring schedule, socket I/O and the
# reduce in C on a thread of its own, src/collective/native-plane.ts) into
# native/ring-plane/build/ring_plane.node. Idempotent: rebuilds only when a source is newer.
#
# Why no node-gyp: the addon is a few C files with no dependencies; the N-API symbols resolve from
# the node binary when it loads, so gcc and Node's own headers are all it needs.
#
# Without a C compiler or Node's headers the build is skipped with one line, and rings use the
# JavaScript data plane (RingAllreduceOptions.dataPlane 'auto'); BBN_REQUIRE_NATIVE=1 (CI) makes
# that an error instead.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)/native/ring-plane"
cc="${CC:-gcc}"
inc="$(dirname "$(dirname "$(command -v node)")")/include/node"
skip() {
  if [ "${BBN_REQUIRE_NATIVE:-0}" = 1 ]; then
    echo "setup-native: $1 (BBN_REQUIRE_NATIVE=1)" >&2
    exit 1
  fi
  echo "setup-native: skipped, $1; rings use the JavaScript data plane"
  exit 0
}
[ "$(uname -s)" = Linux ] || skip "not Linux (the plane is written for Linux: eventfd, poll, MSG_DONTWAIT)"
command -v "$cc" >/dev/null || skip "no C compiler ($cc)"
[ -f "$inc/node_api.h" ] || skip "no Node headers at $inc (node_api.h)"
mkdir -p "$here/build"
out="$here/build/ring_plane.node"
srcs=("$here"/*.c) # every C file of the addon (bench/peers/native/wire-check-asan.sh builds the same)
stale=0
[ -f "$out" ] || stale=1
for f in "${srcs[@]}" "$here"/*.h "$0"; do [ "$f" -nt "$out" ] && stale=1; done
if [ "$stale" = 1 ]; then
  # Plain -O3: the a[i] += b[i] loop vectorises with the baseline SSE2, so no CPU check is needed.
  # Warnings are errors where the build is required (CI), so new ones are seen there first.
  werror=()
  [ "${BBN_REQUIRE_NATIVE:-0}" = 1 ] && werror=(-Werror)
  log="$here/build/compile.log"
  if ! "$cc" -O3 -Wall -Wextra "${werror[@]}" -shared -fPIC -I"$inc" -DNODE_GYP_MODULE_NAME=ring_plane \
    -o "$out.tmp" "${srcs[@]}" -lpthread >"$log" 2>&1; then
    rm -f "$out.tmp"
    cat "$log" >&2
    skip "$cc could not compile it (log: $log)"
  fi
  mv "$out.tmp" "$out"
  echo "setup-native: built $out"
else
  echo "setup-native: $out is up to date"
fi
