#!/usr/bin/env bash
# Runs wire-check.ts, wire-interop.ts, check.ts, handover-check.ts and downstream-check.ts against
# a build of the addon with AddressSanitizer and UBSan, so that a read of wire.c's classifier
# outside a message (each one is its own exact-size allocation in wire-check.ts), a bad access of
# the ring's slow path or of the failure paths, or undefined behaviour stops the run. Bench only; needs gcc's libasan and libubsan.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cc="${CC:-gcc}"
inc="$(dirname "$(dirname "$(command -v node)")")/include/node"
mkdir -p "$here/build"
out="$here/build/ring_plane-asan.node"
"$cc" -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
  -shared -fPIC -I"$inc" -DNODE_GYP_MODULE_NAME=ring_plane -o "$out" \
  "$here/ring_plane.c" "$here/poll_loop.c" "$here/wire.c" "$here/wire_napi.c" -lpthread
# Node itself is not instrumented: leaks at exit are V8's, not the addon's.
export ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 WIRE_CHECK_ADDON="$out"
preload="$("$cc" -print-file-name=libasan.so):$("$cc" -print-file-name=libubsan.so)"
for check in wire-check.ts wire-interop.ts check.ts handover-check.ts downstream-check.ts; do
  echo "== $check (ASan + UBSan)"
  if ! LD_PRELOAD="$preload" node --import tsx "$here/$check" | tail -3; then
    echo "$check failed under the sanitizers" >&2
    exit 1
  fi
done
