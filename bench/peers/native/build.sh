#!/usr/bin/env bash
# Builds the native ring prototype (ring_plane.c and its poll loop poll_loop.c, with the chunk wire
# wire.c and its test entry points wire_napi.c) into bench/peers/native/build/ring_plane.node.
# Bench only (bench/peers/allreduce-peers.ts --kinds native); never part of CI. No node-gyp: the
# N-API symbols resolve from the node binary when the addon loads. Exit 1 with one line on stderr
# when there is no C compiler or no Node headers.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cc="${CC:-gcc}"
inc="$(dirname "$(dirname "$(command -v node)")")/include/node"
command -v "$cc" >/dev/null || { echo "no C compiler ($cc) to build $here/ring_plane.c" >&2; exit 1; }
[ -f "$inc/node_api.h" ] || { echo "no Node headers at $inc (node_api.h)" >&2; exit 1; }
mkdir -p "$here/build"
out="$here/build/ring_plane.node"
# Plain -O3: the a[i] += b[i] loop vectorises with the baseline SSE2, so no CPU check is needed.
srcs=("$here/ring_plane.c" "$here/poll_loop.c" "$here/wire.c" "$here/wire_napi.c")
stale=0
[ -f "$out" ] || stale=1
for f in "${srcs[@]}" "$here/wire.h" "$here/plane.h" "$0"; do [ "$f" -nt "$out" ] && stale=1; done
if [ "$stale" = 1 ]; then
  "$cc" -O3 -Wall -Wextra -shared -fPIC -I"$inc" -DNODE_GYP_MODULE_NAME=ring_plane \
    -o "$out.tmp" "${srcs[@]}" -lpthread
  mv "$out.tmp" "$out"
fi
