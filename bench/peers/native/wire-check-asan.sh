#!/usr/bin/env bash
# Runs wire-check.ts against a build of the addon with AddressSanitizer and UBSan, so that a read
# of wire.c's classifier outside a message (each one is its own exact-size allocation there) or
# undefined behaviour stops the run. Bench only; needs gcc's libasan and libubsan.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cc="${CC:-gcc}"
inc="$(dirname "$(dirname "$(command -v node)")")/include/node"
mkdir -p "$here/build"
out="$here/build/ring_plane-asan.node"
"$cc" -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
  -shared -fPIC -I"$inc" -DNODE_GYP_MODULE_NAME=ring_plane -o "$out" \
  "$here/ring_plane.c" "$here/wire.c" "$here/wire_napi.c" -lpthread
# Node itself is not instrumented: leaks at exit are V8's, not the addon's.
ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
  LD_PRELOAD="$("$cc" -print-file-name=libasan.so):$("$cc" -print-file-name=libubsan.so)" \
  WIRE_CHECK_ADDON="$out" node --import tsx "$here/wire-check.ts"
